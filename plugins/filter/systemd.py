# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""Filters that turn argument lists into systemd unit syntax."""

from __future__ import annotations

DOCUMENTATION = r"""
name: systemd_command
short_description: Quote an argument list for a systemd ExecStart= line
version_added: 0.1.0
description:
  - Each argument is wrapped in double quotes with backslashes and quotes escaped,
    and C(%) and C($) doubled so systemd does not expand them.
positional: _input
options:
  _input:
    description: The program and its arguments.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
exec_start: "{{ ['/usr/local/bin/temporal', 'server', 'start-dev', '--dynamic-config-value=k=\"v\"'] | durable.temporal.systemd_command }}"
"""

RETURN = r"""
_value:
  description: The quoted command line.
  type: str
"""

from ansible.errors import AnsibleFilterError


def _quote(argument: object) -> str:
    text = str(argument)
    if "\n" in text:
        raise AnsibleFilterError(f"systemd_command: an argument contains a newline: {text!r}")
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


def systemd_command(arguments: list[object]) -> str:
    if isinstance(arguments, (str, bytes)) or not arguments:
        raise AnsibleFilterError("systemd_command: expects a non-empty list of arguments")
    return " ".join(_quote(argument) for argument in arguments)


class FilterModule:
    def filters(self) -> dict[str, object]:
        return {"systemd_command": systemd_command}
