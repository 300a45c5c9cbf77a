"""Every task carries one phase tag, so that an operator can run one phase alone (--tags configure).

install: packages, users, directories, binaries, virtualenvs, database schema. configure: configuration
files, TLS material, units and drop-ins, environment files. run: starting, stopping, restarting,
readiness waits. always: what every phase needs (preflight checks, host reads, internal facts) and
every include, whose tasks carry their own tags. Handlers carry none: they run when notified. A rolling
restart (restart.yml) does a handler's job, one host at a time, so it too runs under any --tags.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from render import ROOT

PHASES = {"install", "configure", "run"}
TAGS = PHASES | {"always"}
NESTED = ("block", "rescue", "always")
INCLUDES = {
    "ansible.builtin.include_tasks",
    "ansible.builtin.include_role",
    "ansible.builtin.import_tasks",
    "ansible.builtin.import_role",
}
# Modules whose phase follows from what they do.
ALWAYS = {"durable.temporal.host_state", "ansible.builtin.set_fact", "ansible.builtin.validate_argument_spec"} | INCLUDES
INSTALL = {"ansible.builtin.apt", "ansible.builtin.user", "ansible.builtin.group", "ansible.builtin.pip"}
ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if (path / "tasks").is_dir())


def leaves(tasks: Any, inherited: frozenset[str] = frozenset()) -> Iterator[tuple[dict[str, Any], set[str]]]:
    """Each task that is not a block, with its own tags and those of the blocks around it."""
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        tags = inherited | frozenset(task.get("tags") or [])
        if any(key in task for key in NESTED):
            for key in NESTED:
                yield from leaves(task.get(key), tags)
        else:
            yield task, set(tags)


def module_of(task: dict[str, Any]) -> str:
    known = ALWAYS | INSTALL | {"ansible.builtin.systemd_service", "ansible.builtin.meta"}
    return next((key for key in task if key in known or key.count(".") == 2), "")


def check(task: dict[str, Any], tags: set[str], where: str) -> list[str]:
    name = f"{where}: {task.get('name', '<unnamed>')!r}"
    if len(tags) != 1 or not tags <= TAGS:
        return [f"{name} has tags {sorted(tags)}, not exactly one of {sorted(TAGS)}"]
    (tag,) = tags
    module = module_of(task)
    expected = None
    if module in ALWAYS or where.endswith(("/preflight.yml", "/restart.yml")):
        expected = "always"
    elif module in INSTALL:
        expected = "install"
    elif module == "ansible.builtin.systemd_service":
        arguments = task[module] or {}
        expected = "run" if "state" in arguments or "enabled" in arguments else "configure"
    if expected and tag != expected:
        return [f"{name} ({module}) is tagged {tag}, not {expected}"]
    return []


def role_problems(role: str) -> list[str]:
    problems = []
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        where = str(path.relative_to(ROOT))
        for task, tags in leaves(yaml.safe_load(path.read_text())):
            problems += check(task, tags, where)
    return problems


@pytest.mark.parametrize("role", ROLES)
def test_every_task_carries_one_phase_tag(role: str) -> None:
    problems = role_problems(role)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("role", ROLES)
def test_handlers_carry_no_tags(role: str) -> None:
    for path in sorted((ROOT / "roles" / role / "handlers").glob("*.yml")):
        for task, tags in leaves(yaml.safe_load(path.read_text())):
            assert not tags, f"{path.relative_to(ROOT)}: handler {task.get('name')!r} is tagged {sorted(tags)}"


def test_the_playbooks_reach_every_phase() -> None:
    """A play's include is always run, or --tags would skip every role behind it; an imported playbook is left
    untagged, since its tags would be added to every task in it."""
    for path in [ROOT / "site.yml", *sorted((ROOT / "playbooks").glob("*.yml"))]:
        for entry in yaml.safe_load(path.read_text()):
            if "ansible.builtin.import_playbook" in entry:
                assert not entry.get("tags"), f"{path.relative_to(ROOT)}: {entry.get('name')!r}"
                continue
            for key in ("pre_tasks", "tasks", "post_tasks"):
                for task, tags in leaves(entry.get(key)):
                    assert tags == {"always"} if module_of(task) in INCLUDES else len(tags) == 1, (
                        f"{path.relative_to(ROOT)}: {task.get('name')!r} is tagged {sorted(tags)}"
                    )


def test_a_task_without_its_phase_is_reported() -> None:
    """The check itself: a task missing its tag, one with two and a start tagged configure are all caught."""
    tasks = [
        {"name": "Untagged", "ansible.builtin.copy": {"dest": "/x"}},
        {"name": "Two", "ansible.builtin.copy": {"dest": "/x"}, "tags": ["install", "configure"]},
        {"block": [{"name": "Start", "ansible.builtin.systemd_service": {"name": "x", "state": "started"}}], "tags": ["configure"]},
        {"name": "Include", "ansible.builtin.include_tasks": "x.yml", "tags": ["install"]},
        {"name": "Fine", "ansible.builtin.copy": {"dest": "/x"}, "tags": ["configure"]},
    ]
    problems = [problem for task, tags in leaves(tasks) for problem in check(task, tags, "roles/x/tasks/install.yml")]
    assert [problem.split("'")[1] for problem in problems] == ["Untagged", "Two", "Start", "Include"]
