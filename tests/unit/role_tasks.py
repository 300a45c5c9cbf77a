"""The roles' task files as data: every task, nested blocks included, for tests that check them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import yaml
from render import ROOT

NESTED = ("block", "rescue", "always")


def task_files(*, playbooks: bool = False) -> list[Path]:
    """Every roles' tasks and handlers file; with playbooks, site.yml and playbooks/ first."""
    files = [ROOT / "site.yml", *sorted((ROOT / "playbooks").glob("*.yml"))] if playbooks else []
    for part in ("tasks", "handlers"):
        files += sorted((ROOT / "roles").glob(f"*/{part}/*.yml"))
    return files


def walk(tasks: Any) -> Iterator[dict[str, Any]]:
    """Each task, then the tasks of its blocks; a play's tasks too, so playbooks walk like task files."""
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in (*NESTED, "tasks"):
            yield from walk(task.get(key))


def tasks_of(*, playbooks: bool = False) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(file, task) for every task of task_files()."""
    for path in task_files(playbooks=playbooks):
        for task in walk(yaml.safe_load(path.read_text())):
            yield path, task
