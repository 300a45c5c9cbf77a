# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""SHA-1 of a file or directory tree on the controller: names and contents, in a stable order."""

from __future__ import annotations

DOCUMENTATION = r"""
name: tree_checksum
short_description: Checksum of a file or a directory tree on the controller
version_added: 0.1.0
description:
  - One SHA-1 per term over the relative path and the bytes of every regular file under it, in sorted
    order, so it changes exactly when a file is added, removed, renamed or edited.
  - Caches of Python tools are left out by default (they change without the sources changing).
  - A term that does not exist gives an empty string.
options:
  _terms:
    description: Paths on the controller.
    type: list
    elements: path
    required: true
  exclude:
    description: Names (shell patterns) of files and directories to leave out, at any depth.
    type: list
    elements: str
    default: [__pycache__, "*.pyc", .mypy_cache, .ruff_cache, .pytest_cache, build, dist, "*.egg-info", .git]
"""

EXAMPLES = r"""
- name: Build the wheel only when the sources changed
  ansible.builtin.debug:
    msg: "{{ lookup('durable.temporal.tree_checksum', playbook_dir ~ '/workers') }}"
"""

RETURN = r"""
_raw:
  description: One hex SHA-1 per term.
  type: list
  elements: str
"""

import fnmatch
import hashlib
import os

from ansible.plugins.lookup import LookupBase


def tree_checksum(root: str, exclude: list[str]) -> str:
    if not os.path.exists(root):
        return ""

    def kept(name: str) -> bool:
        return not any(fnmatch.fnmatch(name, pattern) for pattern in exclude)

    digest = hashlib.sha1()
    if os.path.isfile(root):
        files = [("", root)]
    else:
        files = []
        for directory, subdirs, names in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if kept(d))
            for name in sorted(n for n in names if kept(n)):
                path = os.path.join(directory, name)
                if os.path.isfile(path):
                    files.append((os.path.relpath(path, root), path))
    for relative, path in sorted(files):
        # Name and size first, so no two different trees feed the same bytes.
        digest.update(b"%s\0%d\0" % (relative.encode(), os.path.getsize(path)))
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):  # type: ignore[no-untyped-def]
        self.set_options(var_options=variables, direct=kwargs)
        exclude = self.get_option("exclude")
        return [tree_checksum(os.path.expanduser(str(term)), exclude) for term in terms]
