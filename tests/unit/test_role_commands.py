"""The roles leave to maintained modules what those modules do; the commands that remain say truly what changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from render import ROOT
from role_tasks import tasks_of

COMMANDS = ("ansible.builtin.command", "ansible.builtin.shell")
# Programs a module already drives: systemd (service_facts, systemd_service), dpkg and apt (apt,
# package_facts, durable.temporal.host_state), accounts (user, group).
MODULE_WORK = {"systemctl", "dpkg-query", "dpkg", "apt-get", "apt", "service", "useradd", "groupadd", "userdel", "groupdel"}


def command_tasks() -> Iterator[tuple[Path, dict[str, Any], str]]:
    for path, task in tasks_of():
        for key in COMMANDS:
            if key in task:
                arguments = task[key]
                argv = arguments.get("argv") if isinstance(arguments, dict) else None
                if isinstance(argv, list):
                    program = str(argv[0])
                else:
                    text = arguments if isinstance(arguments, str) else str(arguments.get("cmd", argv or ""))
                    program = text.split()[0] if text.split() else ""
                yield path, task, program


def test_the_parser_finds_the_commands() -> None:
    assert len(list(command_tasks())) >= 5


def test_no_command_does_what_a_module_does() -> None:
    found = [
        (str(path.relative_to(ROOT)), task.get("name"))
        for path, task, program in command_tasks()
        if program.rsplit("/", 1)[-1] in MODULE_WORK or "list-units" in program
    ]
    assert not found, found


def test_every_command_says_when_it_changed_something() -> None:
    # Without changed_when (or creates/removes) a command reports a change on every run.
    silent = [
        (str(path.relative_to(ROOT)), task.get("name"))
        for path, task, _ in command_tasks()
        if "changed_when" not in task and not any(k in (task.get("ansible.builtin.command") or {}) for k in ("creates", "removes"))
    ]
    assert not silent, silent
