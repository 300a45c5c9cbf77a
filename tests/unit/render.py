"""Runs a small playbook against an inventory of local hosts, with this checkout as durable.temporal."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

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
