#!/usr/bin/python
# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""Reads what a role manages on a host (accounts, services, packages, paths) in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
module: host_state
short_description: Read a service's accounts, systemd state, packages and paths in one call
description:
  - The first task of a role, one remote call that tells the role what is already
    in place, so the tasks that would change nothing are skipped rather than each asking the host.
  - Read-only; never reports a change. M(durable.temporal.files) uses it for the one remote call it makes on a host that needs no change.
version_added: 0.1.0
author: durable.temporal maintainers (@durable)
options:
  users:
    description: Account names to look up.
    type: list
    elements: str
    default: []
  groups:
    description: Group names to look up.
    type: list
    elements: str
    default: []
  services:
    description: systemd units (C(.service) may be left out) whose active and enabled state to report.
    type: list
    elements: str
    default: []
  service_pattern:
    description: A unit pattern such as C(temporal-worker@*); the units systemd knows that match it are reported too.
    type: str
    default: ""
  packages:
    description: Debian packages whose installed state to report.
    type: list
    elements: str
    default: []
  paths:
    description:
      - Absolute paths to read; symbolic links are not followed.
      - Reported are whether each exists, its type, owner, group and octal mode, a link's target and a directory's entries.
    type: list
    elements: str
    default: []
  checksum:
    description: The paths among O(paths) whose SHA-1 checksum to report.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    description: Can run in check mode and return the same answers as without it.
    support: full
  diff_mode:
    description: Reads only, so there is no difference to show.
    support: none
"""

EXAMPLES = r"""
- name: Read the state of the dev server on the host
  durable.temporal.host_state:
    users: [temporal]
    groups: [temporal]
    services: [temporal-dev-server]
  register: _dev_server_host
"""

RETURN = r"""
users:
  description: Per name, C(exists) and, when it does, C(uid), C(group) (primary group name), C(home), C(shell).
  returned: always
  type: dict
groups:
  description: Per name, C(exists) and C(gid).
  returned: always
  type: dict
services:
  description: Per unit (without C(.service)), C(active) and C(enabled) as C(systemctl is-active) and C(is-enabled) print them.
  returned: always
  type: dict
packages:
  description: Per package, whether dpkg reports it installed.
  returned: always
  type: dict
paths:
  description:
    - Per path, C(exists) and, when it does, C(type) (file, directory, link, other), C(owner), C(group), C(mode),
      C(link_target), C(entries), C(size) and C(checksum) (SHA-1, when asked).
  returned: always
  type: dict
"""

import grp
import pwd
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.durable.temporal.plugins.module_utils.host_reads import group_name, read_paths


def read_user(name: str) -> dict[str, Any]:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return {"exists": False}
    return {
        "exists": True,
        "uid": entry.pw_uid,
        "group": group_name(entry.pw_gid),
        "home": entry.pw_dir,
        "shell": entry.pw_shell,
    }


def read_group(name: str) -> dict[str, Any]:
    try:
        return {"exists": True, "gid": grp.getgrnam(name).gr_gid}
    except KeyError:
        return {"exists": False}


def _unit_name(unit: str) -> str:
    return unit[: -len(".service")] if unit.endswith(".service") else unit


def read_services(module: AnsibleModule, units: list[str], pattern: str) -> dict[str, Any]:
    names = [_unit_name(unit) for unit in units]
    if pattern:
        rc, out, err = module.run_command(
            ["systemctl", "list-units", "--all", "--plain", "--no-legend", "--type=service", pattern]
        )
        if rc != 0:
            module.fail_json(msg="systemctl list-units %s failed: %s" % (pattern, err.strip()))
        names += [_unit_name(line.split()[0]) for line in out.splitlines() if line.strip()]
    states = {}
    for name in dict.fromkeys(names):
        # Non-zero exit codes are answers here (inactive, disabled, not-found), not failures.
        active = module.run_command(["systemctl", "is-active", name + ".service"])[1]
        enabled = module.run_command(["systemctl", "is-enabled", name + ".service"])[1]
        states[name] = {"active": active.strip(), "enabled": enabled.strip()}
    return states


def read_packages(module: AnsibleModule, packages: list[str]) -> dict[str, bool]:
    if not packages:
        return {}
    out = module.run_command(["dpkg-query", "--show", "--showformat", "${Package} ${db:Status-Status}\n"] + packages)[1]
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return {package: package in installed for package in packages}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            users=dict(type="list", elements="str", default=[]),
            groups=dict(type="list", elements="str", default=[]),
            services=dict(type="list", elements="str", default=[]),
            service_pattern=dict(type="str", default=""),
            packages=dict(type="list", elements="str", default=[]),
            paths=dict(type="list", elements="str", default=[]),
            checksum=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    params = module.params
    module.exit_json(
        changed=False,
        users={name: read_user(name) for name in params["users"]},
        groups={name: read_group(name) for name in params["groups"]},
        services=read_services(module, params["services"], params["service_pattern"]),
        packages=read_packages(module, params["packages"]),
        paths=read_paths(module, params["paths"], params["checksum"]),
    )


if __name__ == "__main__":
    main()
