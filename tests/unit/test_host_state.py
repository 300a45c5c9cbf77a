"""durable.temporal.host_state: what a role reads before it decides to change anything."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
from pathlib import Path

from render import BOX_INVENTORY, run_local_playbook



def read(tmp_path: Path, args: str) -> dict:
    playbook = f"""
- hosts: box
  gather_facts: false
  tasks:
    - durable.temporal.host_state: {args}
      register: state
    - ansible.builtin.debug:
        msg: "RESULT={{{{ state | to_json }}}}"
"""
    out = run_local_playbook(tmp_path, BOX_INVENTORY, playbook, "--check")
    match = re.search(r'"msg": "RESULT=(.*)"\n', out)
    assert match, out
    return json.loads(json.loads('"' + match.group(1) + '"'))


def test_accounts_present_and_missing(tmp_path: Path) -> None:
    me = pwd.getpwuid(os.getuid())
    state = read(tmp_path, f"{{users: [{me.pw_name}, no-such-user-x], groups: [no-such-group-x]}}")
    assert state["changed"] is False
    assert state["users"][me.pw_name] == {
        "exists": True,
        "uid": me.pw_uid,
        "group": grp.getgrgid(me.pw_gid).gr_name,
        "home": me.pw_dir,
        "shell": me.pw_shell,
    }
    assert state["users"]["no-such-user-x"] == {"exists": False}
    assert state["groups"]["no-such-group-x"] == {"exists": False}


def test_paths_with_checksum_and_a_package_that_is_not_installed(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("abc\n")
    target.chmod(0o640)
    state = read(tmp_path, f"{{paths: ['{target}', '{tmp_path}/none'], checksum: ['{target}'], packages: [no-such-package-x]}}")
    assert state["paths"][str(target)]["mode"] == "0640"
    assert state["paths"][str(target)]["checksum"] == "03cfd743661f07975fa2f1220c5194cbaff48451"
    assert state["paths"][f"{tmp_path}/none"] == {"exists": False}
    assert state["packages"] == {"no-such-package-x": False}
