"""roles/_common is internal: run on its own it refuses, run as the roles' dependency it checks the host,
and an entry point included with a misspelled input is refused by its argument specification."""

from __future__ import annotations

from pathlib import Path

from render import BOX_INVENTORY, run_playbook

REFUSAL = "durable.temporal._common is internal to the durable.temporal roles and not for direct use"

PLAYBOOK = """
- name: Include the role without tasks_from, then an entry point with a misspelled input
  hosts: box
  gather_facts: false
  tasks:
    - name: Include the internal role directly
      block:
        - name: Include it
          ansible.builtin.include_role:
            name: durable.temporal._common
      rescue:
        - name: Go on
          ansible.builtin.debug:
            msg: RESCUED
    - name: Include an entry point with a misspelled input
      block:
        - name: Include it
          ansible.builtin.include_role:
            name: durable.temporal._common
            tasks_from: service_user
          vars:
            _common_user: probe
            _common_group: probe
            _common_hmoe: /nonexistent
      rescue:
        - name: Go on
          ansible.builtin.debug:
            msg: RESCUED

- name: Run a role that depends on the internal role
  hosts: box
  gather_facts: true
  gather_subset: [min]
  tasks:
    - name: Run the role, whose dependency checks the host (this machine may not run systemd)
      block:
        - name: Include it
          ansible.builtin.include_role:
            name: probe
      rescue:
        - name: Go on
          ansible.builtin.debug:
            msg: RESCUED

- name: Run the internal role as a play's role
  hosts: box
  gather_facts: false
  roles:
    - durable.temporal._common
"""

PROBE_META = """---
dependencies:
  - role: durable.temporal._common
    vars:
      _common_as_dependency: true
"""


def test_direct_use_is_refused_a_dependency_is_not_and_a_misspelled_input_is(tmp_path: Path) -> None:
    probe = tmp_path / "roles" / "probe"
    (probe / "meta").mkdir(parents=True)
    (probe / "tasks").mkdir()
    (probe / "meta" / "main.yml").write_text(PROBE_META)
    (probe / "tasks" / "main.yml").write_text("---\n- name: Say the probe ran\n  ansible.builtin.debug:\n    msg: PROBE-RAN\n")

    result = run_playbook(tmp_path, BOX_INVENTORY, PLAYBOOK)
    out = result.stdout
    assert result.returncode != 0, out
    included, dependency, as_role = out.split("PLAY [")[1:4]

    assert REFUSAL in included
    assert "missing required arguments: _common_home" in included

    # As a dependency: no refusal, the host check runs (whatever this machine's service manager), then the role.
    assert REFUSAL not in dependency
    assert "TASK [durable.temporal._common : Check that the host is a systemd Linux host]" in dependency
    assert "Refuse direct use of the internal role" in dependency

    assert REFUSAL in as_role
    assert "Check that the host is a systemd Linux host" not in as_role
