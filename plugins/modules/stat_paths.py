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

import grp
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def read_path(module: AnsibleModule, path: str, with_checksum: bool) -> dict:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    info = {
        "exists": True,
        "owner": _owner_name(st.st_uid),
        "group": _group_name(st.st_gid),
        "mode": "%04o" % stat.S_IMODE(st.st_mode),
    }
    if stat.S_ISLNK(st.st_mode):
        info.update(type="link", link_target=os.readlink(path))
    elif stat.S_ISDIR(st.st_mode):
        info.update(type="directory", entries=sorted(os.listdir(path)))
    elif stat.S_ISREG(st.st_mode):
        info.update(type="file", size=st.st_size)
        if with_checksum:
            info["checksum"] = module.sha1(path)
    else:
        info["type"] = "other"
    return info


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="str", required=True),
            checksum=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    with_checksum = set(module.params["checksum"])
    paths = {path: read_path(module, path, path in with_checksum) for path in module.params["paths"]}
    module.exit_json(changed=False, paths=paths)


if __name__ == "__main__":
    main()
