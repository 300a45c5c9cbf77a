"""Runs a small playbook against an inventory of local hosts, with this checkout as durable.temporal."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# One host, "box", that is this machine; pipelining as ansible.cfg sets it (a module is one EXEC).
BOX_INVENTORY = """
all:
  hosts:
    box:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
      ansible_pipelining: true
"""


def run_local_playbook(tmp_path: Path, inventory: str, playbook: str, *args: str) -> str:
    """Writes both files into tmp_path, runs ansible-playbook there and returns its output; fails on an error."""
    result = run_playbook(tmp_path, inventory, playbook, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def run_playbook(tmp_path: Path, inventory: str, playbook: str, *args: str) -> subprocess.CompletedProcess[str]:
    """As run_local_playbook, but returns the finished process whether or not the run failed."""
    (tmp_path / "inventory.yml").write_text(inventory)
    (tmp_path / "render.yml").write_text(playbook)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_HOME=str(tmp_path / "home"))
    return subprocess.run(
        ["ansible-playbook", "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "render.yml"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )


def role_vars_play(hosts: str, *files: str) -> str:
    """The head of a play, without facts, that loads these files of roles/ (e.g. "worker/defaults/main.yml")."""
    listed = "".join(f"\n    - {ROOT}/roles/{name}" for name in files)
    return f"- hosts: {hosts}\n  gather_facts: false\n  vars_files:{listed}\n"


def role_values(tmp_path: Path, inventory: str, files: tuple[str, ...], values: dict[str, str], *args: str) -> dict[str, dict[str, Any]]:
    """Each inventory host's values of these expressions, with these roles' files loaded: {host: {key: value}}."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "values"
    out.mkdir(exist_ok=True)
    expressions = "".join(f"\n          {key}: {json.dumps(expression)}" for key, expression in values.items())
    playbook = role_vars_play("all", *files) + f"""  tasks:
    - ansible.builtin.copy:
        dest: "{out}/{{{{ inventory_hostname }}}}.json"
        content: "{{{{ values | to_json }}}}"
        mode: "0600"
      vars:
        values:{expressions}
"""
    run_local_playbook(tmp_path, inventory, playbook, *args)
    return {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
