#!/usr/bin/python
"""Reads the type, owner, mode and checksum of many paths in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stat_paths
short_description: Read the state of many paths on the host in one call
description:
  - Reports, for each path, whether it exists, its type, owner, group and mode, the target of a
    symbolic link, the entries of a directory and, when asked, the SHA-1 checksum of a regular file.
  - Read-only; never reports a change. It is the one remote call that M(durable.temporal.files)
    makes on a host that needs no change.
  - Symbolic links are not followed.
version_added: 0.1.0
author: durable.temporal maintainers
options:
  paths:
    description: The absolute paths to read.
    type: list
    elements: str
    required: true
  checksum:
    description: The paths among O(paths) whose SHA-1 checksum to report when they are regular files.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Read the CLI's files
  durable.temporal.stat_paths:
    paths: [/opt/temporal-cli, /opt/temporal-cli/1.9.1/temporal, /usr/local/bin/temporal]
  register: _cli_paths
"""

RETURN = r"""
paths:
  description: One entry per path, keyed by the path as given.
  returned: always
  type: dict
  sample:
    /etc/temporal/config.yaml:
      exists: true
      type: file
      owner: root
      group: temporal
      mode: "0640"
      checksum: 5b0cd5d0b4b6d5b3f7ad12c2c1b0d8f5f3a1e9e2
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.durable.temporal.plugins.module_utils.host_reads import read_paths


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="str", required=True),
            checksum=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    module.exit_json(changed=False, paths=read_paths(module, module.params["paths"], module.params["checksum"]))


if __name__ == "__main__":
    main()
