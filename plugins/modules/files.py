#!/usr/bin/python
# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""Documentation of the files action; the work is done by plugins/action/files.py."""

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: Put several files, directories and links in place, with one remote call when nothing changes
description:
  - Puts a list of files (from content such as a C(template) lookup, or from a file on the controller), directories,
    symbolic links and removals in place on a host.
  - It exists for speed. A task per file costs at least one connection round trip and a fresh Python on the host per
    file, even when nothing has to change. This action reads every listed path with one call of
    M(durable.temporal.host_state) (type, owner, group, mode, link target, SHA-1 of the content) and compares on the
    controller, so a converged host costs one remote call for the whole list.
  - An entry is left alone only when that read proves the standard module would change nothing, that is same type,
    same SHA-1 checksum of the content, same owner, group and octal mode. Anything else (a symbolic mode, a numeric
    owner) is handed over to the standard module.
  - A file whose content differs is sent to a remote temporary directory and moved into place by
    M(ansible.builtin.copy)'s module, which checks the transfer, runs O(files[].validate) and replaces the file
    atomically. A file whose content is right but whose owner, group or mode are not, and every directory, link and
    removal, go to M(ansible.builtin.file).
  - Entries are applied in order; the first failure stops the task, and later entries are not touched.
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
          - V(directory) creates a directory (and its parents), V(link) a symbolic link to O(files[].src),
            V(absent) removes the path.
        type: str
        choices: [file, directory, link, absent]
        default: file
      content:
        description:
          - The file's content, for example from a C(template) lookup. Mutually exclusive with O(files[].src).
        type: str
      src:
        description:
          - For V(file), a file on the controller, searched like M(ansible.builtin.copy)'s (the role's or playbook's
            C(files/)); a vaulted file is decrypted.
          - For V(link), the link target.
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
        description:
          - A command that checks the new file before it replaces the old one, with V(%s) for the file's path, as in
            M(ansible.builtin.copy). Runs only when the content changes, and not in check mode. An empty string means
            none.
        type: str
      force:
        description: As in M(ansible.builtin.file), for links.
        type: bool
attributes:
  check_mode:
    description: Reports what would change and changes nothing; O(files[].validate) does not run.
    support: full
  diff_mode:
    description:
      - Shows the content before and after for files whose content changes, and the attribute changes of
        M(ansible.builtin.file). The task keyword C(diff) set to false, or C(no_log) set to true, keeps the content
        out of the output, as for M(ansible.builtin.copy).
    support: full
  action:
    description: Runs as an action plugin on the controller, which calls modules on the host.
    support: full
  platform:
    description: POSIX hosts.
    support: full
    platforms: posix
notes:
  - A converged host costs one remote call. Each entry that differs costs the calls its standard module would cost
    alone, plus a temporary directory on the host for the first file written.
seealso:
  - module: durable.temporal.host_state
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
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
  notify: Restart the workers

- name: Install a helper script, point a link at the current release and drop a stale file
  durable.temporal.files:
    files:
      - path: /usr/local/libexec/example/check
        src: check.sh
        mode: "0755"
      - path: /opt/example/current
        state: link
        src: /opt/example/1.2.0
        force: true
      - path: /etc/example/old.conf
        state: absent

- name: Write a file with a password; no diff of it
  durable.temporal.files:
    files:
      - path: /etc/example/secret.env
        content: "PASSWORD={{ example_password }}\n"
        owner: root
        group: example
        mode: "0640"
  diff: false
"""

RETURN = r"""
files:
  description: Per path, whether it changed and what the read found before any change.
  returned: always
  type: dict
  contains:
    changed:
      description: Whether this entry changed (or, in check mode, would have).
      type: bool
      returned: always
    before:
      description:
        - What M(durable.temporal.host_state) read at the path before the task changed anything; C(checksum) is there
          for files written from content or O(files[].src).
      type: dict
      returned: always
  sample:
    /etc/temporal-workers/config.yaml:
      changed: false
      before: {exists: true, type: file, owner: root, group: temporal-worker, mode: "0640"}
"""
