"""How the dev_server role hands SQLite pragmas to the server: every name lowercased, page_size
quoted so the server's driver runs it before journal_mode (it runs them in name order), and a page
size SQLite would ignore refused before anything changes, under any spelling of its name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from render import BOX_INVENTORY, run_playbook

PLAYBOOK = """
- hosts: box
  gather_facts: false
  vars:
    # What the role's host check reads; this test only renders and checks variables.
    ansible_facts: {{system: Linux, service_mgr: systemd}}
  tasks:
    - ansible.builtin.include_role:
        name: durable.temporal.dev_server
        tasks_from: preflight
        public: true
      vars:
        temporal_dev_server_sqlite_pragmas: {pragmas}
    - ansible.builtin.copy:
        dest: "{out}"
        content: "{{{{ _temporal_dev_server_args | select('match', '--sqlite-pragma') | list | to_json }}}}"
        mode: "0600"
      vars:
        temporal_dev_server_sqlite_pragmas: {pragmas}
"""


def pragma_args(tmp_path: Path, pragmas: dict[str, object]) -> tuple[int, str, list[str] | None]:
    out = tmp_path / "args.json"
    run = run_playbook(tmp_path, BOX_INVENTORY, PLAYBOOK.format(pragmas=json.dumps(pragmas), out=out))
    args = json.loads(out.read_text()) if out.exists() else None
    return run.returncode, run.stdout + run.stderr, args


@pytest.mark.parametrize("name", ["page_size", "PAGE_SIZE", "Page_Size"])
def test_page_size_is_quoted_to_run_first_under_any_spelling(tmp_path: Path, name: str) -> None:
    code, output, args = pragma_args(tmp_path, {"Journal_Mode": "wal", name: 2048, "SYNCHRONOUS": "normal"})
    assert code == 0, output
    assert args == ['--sqlite-pragma=journal_mode=wal', '--sqlite-pragma="page_size"=2048', "--sqlite-pragma=synchronous=normal"]


@pytest.mark.parametrize(
    "pragmas",
    [
        {"page_size": 3000},
        {"PAGE_SIZE": 3000},
        {"page_size": "big"},
        # Two spellings of one pragma: which one SQLite would take is not ours to guess.
        {"page_size": 2048, "PAGE_SIZE": 4096},
        {"synchronous": "normal", "Synchronous": "full"},
    ],
)
def test_a_page_size_sqlite_ignores_or_a_pragma_named_twice_is_refused(tmp_path: Path, pragmas: dict[str, object]) -> None:
    code, output, args = pragma_args(tmp_path, pragmas)
    assert code != 0, f"{pragmas} was accepted"
    assert "temporal_dev_server_sqlite_pragmas" in output
    assert args is None
