#!/usr/bin/python
# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""Documentation of the files action; the work is done by plugins/action/files.py."""

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: Put several files, directories and links in place, with one remote call when nothing changes
description:
  - Reads every listed path with one call of M(durable.temporal.host_state), then hands each entry that
    is not already as described to the standard module that would have managed it alone
    (M(ansible.builtin.copy) for content and files, M(ansible.builtin.file) for directories, links,
    modes and removals). Those modules do the writing, so C(validate), check mode, C(--diff),
    atomic replacement and error messages are theirs.
  - An entry is left alone only when the read proves the standard module would change nothing, that is
    same type, same SHA-1 checksum of the content, same owner, group and octal mode. Anything else
    (a symbolic mode, a numeric owner) is handed to the standard module.
  - Entries are applied in order; the first failure stops the task.
version_added: 0.1.0
author: durable.temporal maintainers (@durable)
options:
  files:
    description: What to put in place, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path on the host.
        type: path
        required: true
      state:
        description:
          - V(file) with O(files[].content) or O(files[].src) writes a file; without either it only sets
            the attributes of an existing file.
        type: str
        choices: [file, directory, link, absent]
        default: file
      content:
        description: The file's content, for example from a C(template) lookup.
        type: str
      src:
        description: For V(file), a file on the controller (searched like M(ansible.builtin.copy)'s); for V(link), the link target.
        type: str
      owner:
        description: Owner name.
        type: str
      group:
        description: Group name.
        type: str
      mode:
        description: Mode; an octal string such as V('0640') can be compared without a call.
        type: str
      validate:
        description: As in M(ansible.builtin.copy); runs only when the file changes.
        type: str
      force:
        description: As in M(ansible.builtin.file), for links.
        type: bool
attributes:
  check_mode:
    description: Can run in check mode; what would change is reported by the standard modules' own check mode.
    support: full
  diff_mode:
    description: Shows the differences as M(ansible.builtin.copy) and M(ansible.builtin.file) show them.
    support: full
  action:
    description: Runs as an action plugin on the controller, which calls modules on the host.
    support: full
"""

EXAMPLES = r"""
- name: Write the workers' configuration and environment
  durable.temporal.files:
    files:
      - path: /etc/temporal-workers/config.yaml
        content: "{{ lookup('ansible.builtin.template', 'config.yaml.j2') }}"
        owner: root
        group: temporal-worker
        mode: "0640"
        validate: /opt/temporal-workers/venv/bin/temporal-workers check-config --config %s
      - path: /var/lib/temporal-workers
        state: directory
        owner: temporal-worker
        group: temporal-worker
        mode: "0750"
  notify: restart temporal workers
"""

RETURN = r"""
files:
  description: Per path, whether it changed and what the read found before any change.
  returned: always
  type: dict
  sample:
    /etc/temporal-workers/config.yaml:
      changed: false
      before: {exists: true, type: file, owner: root, group: temporal-worker, mode: "0640"}
"""
