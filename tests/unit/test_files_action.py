"""durable.temporal.files: one remote read when nothing changes, the standard modules for what does."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
from pathlib import Path

import pytest
from render import BOX_INVENTORY, ROOT, run_local_playbook, run_playbook


OWNER = pwd.getpwuid(os.getuid()).pw_name
GROUP = grp.getgrgid(os.getgid()).gr_name


def playbook(base: Path, extra_entries: str = "", validate: str = "") -> str:
    return f"""
- hosts: box
  gather_facts: false
  vars:
    greeting: hello
  tasks:
    - name: Put the files in place
      durable.temporal.files:
        files:
          - path: {base}/etc
            state: directory
            owner: {OWNER}
            group: {GROUP}
            mode: "0750"
          - path: {base}/etc/app.conf
            content: "greeting={{{{ greeting }}}}\\n"
            owner: {OWNER}
            group: {GROUP}
            mode: "0640"
            {f"validate: {validate}" if validate else ""}
          - path: {base}/etc/current
            state: link
            src: {base}/etc/app.conf
            force: true
          - path: {base}/stale
            state: absent
{extra_entries}
      register: put
      notify: files changed
    - name: Show what the task returned
      ansible.builtin.debug:
        msg: "RESULT={{{{ put | to_json }}}}"
  handlers:
    - name: Report the change
      ansible.builtin.debug:
        msg: HANDLER-RAN
      listen: files changed
"""


def task_result(stdout: str) -> dict:
    match = re.search(r'"msg": "RESULT=(.*)"\n', stdout)
    assert match, stdout
    return json.loads(json.loads('"' + match.group(1) + '"'))


def module_runs(stdout: str) -> int:
    """Remote module executions of the files task, from -vvv output (one EXEC per call)."""
    section = stdout.split("TASK [Put the files in place]")[1].split("TASK [")[0]
    return len(re.findall(r"<box> EXEC ", section))


@pytest.fixture
def base(tmp_path: Path) -> Path:
    target = tmp_path / "host"
    target.mkdir()
    (target / "stale").write_text("left over\n")
    return target


def test_first_run_creates_everything_and_a_second_run_changes_nothing_with_one_call(tmp_path: Path, base: Path) -> None:
    first = task_result(run_local_playbook(tmp_path, BOX_INVENTORY, playbook(base)))
    assert first["changed"] is True
    assert (base / "etc" / "app.conf").read_text() == "greeting=hello\n"
    assert oct((base / "etc" / "app.conf").stat().st_mode & 0o777) == "0o640"
    assert oct((base / "etc").stat().st_mode & 0o777) == "0o750"
    assert os.readlink(base / "etc" / "current") == str(base / "etc" / "app.conf")
    assert not (base / "stale").exists()
    assert all(entry["changed"] for entry in first["files"].values())

    again = run_local_playbook(tmp_path, BOX_INVENTORY, playbook(base), "-vvv")
    second = task_result(again)
    assert second["changed"] is False
    assert "HANDLER-RAN" not in again
    assert module_runs(again) == 1


def test_only_the_drifted_entry_is_handed_to_the_standard_module(tmp_path: Path, base: Path) -> None:
    run_local_playbook(tmp_path, BOX_INVENTORY, playbook(base))
    conf = base / "etc" / "app.conf"
    conf.write_text("greeting=changed by hand\n")
    (base / "etc").chmod(0o755)

    out = run_local_playbook(tmp_path, BOX_INVENTORY, playbook(base), "--diff")
    result = task_result(out)
    assert result["changed"] is True
    assert {path for path, entry in result["files"].items() if entry["changed"]} == {str(base / "etc"), str(conf)}
    assert conf.read_text() == "greeting=hello\n"
    assert oct((base / "etc").stat().st_mode & 0o777) == "0o750"
    assert "-greeting=changed by hand" in out and "+greeting=hello" in out
    assert "HANDLER-RAN" in out


def test_check_mode_reports_the_change_and_touches_nothing(tmp_path: Path, base: Path) -> None:
    run_local_playbook(tmp_path, BOX_INVENTORY, playbook(base))
    conf = base / "etc" / "app.conf"
    conf.write_text("greeting=changed by hand\n")
    conf.chmod(0o600)

    result = task_result(run_local_playbook(tmp_path, BOX_INVENTORY, playbook(base), "--check", "--diff"))
    assert result["changed"] is True
    assert result["files"][str(conf)]["changed"] is True
    assert conf.read_text() == "greeting=changed by hand\n"
    assert oct(conf.stat().st_mode & 0o777) == "0o600"


def test_a_file_its_checker_refuses_is_not_written_and_later_entries_wait(tmp_path: Path, base: Path) -> None:
    run_local_playbook(tmp_path, BOX_INVENTORY, playbook(base))
    later = base / "later"
    extra = f"""          - path: {later}
            state: directory
"""
    failed = run_playbook(
        tmp_path, BOX_INVENTORY, playbook(base, extra_entries=extra, validate="grep -q goodbye %s").replace("hello", "hi")
    )
    assert failed.returncode != 0
    assert str(base / "etc" / "app.conf") in failed.stdout
    assert "failed to validate" in failed.stdout
    assert (base / "etc" / "app.conf").read_text() == "greeting=hello\n"
    assert not later.exists()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("- path: relative/file\n            content: x", "must be an absolute path"),
        ("- path: /x\n            colour: blue", "unknown keys: colour"),
        ("- path: /x\n            state: socket", "state must be one of"),
        ("- path: /x\n            state: link", "a link needs src"),
        ("- path: /x\n            state: directory\n            content: x", "content needs state file"),
    ],
)
def test_bad_entries_fail_before_anything_changes(tmp_path: Path, base: Path, entry: str, message: str) -> None:
    failed = run_playbook(tmp_path, BOX_INVENTORY, playbook(base, extra_entries="          " + entry + "\n"))
    assert failed.returncode != 0
    assert message in failed.stdout
    assert not (base / "etc").exists()
    assert (base / "stale").exists()


def test_the_action_uses_only_the_action_plugin_api() -> None:
    """Private parts of ansible-core (the shell's tmpdir, the plugin loaders) change without notice."""
    source = (ROOT / "plugins" / "action" / "files.py").read_text()
    for private in ("_shell", "_shared_loader_obj", "action_loader", "_connection."):
        assert private not in source, private


NO_PIPELINING_INVENTORY = """
all:
  hosts:
    box:
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
      ansible_pipelining: false
      ansible_remote_tmp: REMOTE_TMP
"""


def test_without_pipelining_a_file_from_the_controller_is_written_and_no_temporary_directory_stays(tmp_path: Path) -> None:
    target = tmp_path / "host"
    target.mkdir()
    remote_tmp = tmp_path / "remote-tmp"
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "motd").write_text("from the controller\n")
    play = f"""
- hosts: box
  gather_facts: false
  tasks:
    - name: Put the files in place
      durable.temporal.files:
        files:
          - path: {target}/motd
            src: motd
            mode: "0644"
      register: put
    - name: Show what the task returned
      ansible.builtin.debug:
        msg: "RESULT={{{{ put | to_json }}}}"
"""
    inventory = NO_PIPELINING_INVENTORY.replace("REMOTE_TMP", str(remote_tmp))
    first = task_result(run_local_playbook(tmp_path, inventory, play))
    assert first["changed"] is True
    assert (target / "motd").read_text() == "from the controller\n"
    assert list(remote_tmp.iterdir()) == []

    # Same content, other mode: the file module alone puts it right, nothing is copied.
    (target / "motd").chmod(0o600)
    out = run_local_playbook(tmp_path, inventory, play, "-vvv")
    assert task_result(out)["files"][str(target / "motd")]["changed"] is True
    assert oct((target / "motd").stat().st_mode & 0o777) == "0o644"
    section = out.split("TASK [Put the files in place]")[1].split("TASK [")[0]
    assert "AnsiballZ_file.py" in section and "AnsiballZ_copy.py" not in section
    assert list(remote_tmp.iterdir()) == []


def test_secrets_stay_out_of_the_diff_with_diff_false_or_no_log(tmp_path: Path) -> None:
    target = tmp_path / "host"
    target.mkdir()
    (target / "quiet.env").write_text("PASSWORD=old-hush-one\n")
    (target / "hidden.env").write_text("PASSWORD=old-hush-two\n")
    play = f"""
- hosts: box
  gather_facts: false
  tasks:
    - name: Write a password without a diff
      durable.temporal.files:
        files:
          - path: {target}/quiet.env
            content: "PASSWORD=new-hush-one\\n"
            mode: "0600"
      diff: false
    - name: Write a password with no_log
      durable.temporal.files:
        files:
          - path: {target}/hidden.env
            content: "PASSWORD=new-hush-two\\n"
            mode: "0600"
      no_log: true
    - name: Write a plain file
      durable.temporal.files:
        files:
          - path: {target}/plain.conf
            content: "visible=yes\\n"
"""
    out = run_local_playbook(tmp_path, BOX_INVENTORY, play, "--diff", "-v")
    assert (target / "quiet.env").read_text() == "PASSWORD=new-hush-one\n"
    assert (target / "hidden.env").read_text() == "PASSWORD=new-hush-two\n"
    assert "hush" not in out
    # The diff is shown where it may be.
    assert "+visible=yes" in out


def test_a_file_entry_where_a_directory_is_fails_and_writes_nothing_into_it(tmp_path: Path, base: Path) -> None:
    (base / "etc" / "app.conf").mkdir(parents=True)
    failed = run_playbook(tmp_path, BOX_INVENTORY, playbook(base))
    assert failed.returncode != 0
    assert f"{base / 'etc' / 'app.conf'}: is a directory, not a file" in failed.stdout
    assert list((base / "etc" / "app.conf").iterdir()) == []
