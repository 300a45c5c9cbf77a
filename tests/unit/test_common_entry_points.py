"""roles/_common documents one entry point per tasks file the other roles include (main: their dependency), with the inputs they pass."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import yaml
from render import ROOT
from role_tasks import tasks_of

SPECS = yaml.safe_load((ROOT / "roles" / "_common" / "meta" / "argument_specs.yml").read_text())["argument_specs"]
INCLUDES = ("ansible.builtin.include_role", "ansible.builtin.import_role")


def calls() -> dict[str, list[tuple[Path, set[str]]]]:
    """Per tasks_from of _common: each including file and the variables its include passes."""
    found: dict[str, list[tuple[Path, set[str]]]] = defaultdict(list)
    for path, task in tasks_of():
        for key in INCLUDES:
            arguments = task.get(key)
            if isinstance(arguments, dict) and str(arguments.get("name", "")).split(".")[-1] == "_common":
                found[arguments.get("tasks_from", "main")].append((path, set(task.get("vars") or {})))
    # main runs as the roles' dependency, and imports the entry points it is made of.
    for path in sorted((ROOT / "roles").glob("*/meta/main.yml")):
        for dependency in yaml.safe_load(path.read_text()).get("dependencies") or []:
            if str(dependency.get("role", "")).split(".")[-1] == "_common":
                found["main"].append((path, set(dependency.get("vars") or {})))
    for task in yaml.safe_load((ROOT / "roles" / "_common" / "tasks" / "main.yml").read_text()):
        if "ansible.builtin.import_tasks" in task:
            entry = task["ansible.builtin.import_tasks"].removesuffix(".yml")
            found[entry].append((ROOT / "roles" / "_common" / "tasks" / "main.yml", set()))
    return found


CALLS = calls()


def test_one_entry_point_per_tasks_file_the_roles_include() -> None:
    assert set(SPECS) == set(CALLS)
    for entry in SPECS:
        assert (ROOT / "roles" / "_common" / "tasks" / f"{entry}.yml").is_file()


def test_every_call_passes_the_required_inputs_and_only_documented_ones() -> None:
    for entry, spec in SPECS.items():
        options = spec.get("options") or {}
        required = {name for name, option in options.items() if option.get("required")}
        for path, given in CALLS[entry]:
            where = f"{path.relative_to(ROOT)} -> _common/{entry}"
            assert required <= given, f"{where} does not pass {sorted(required - given)}"
            passed = {name for name in given if name.startswith("_common_")}
            assert passed <= set(options), f"{where} passes undocumented {sorted(passed - set(options))}"


def test_documented_inputs_are_read_by_the_tasks() -> None:
    for entry, spec in SPECS.items():
        text = (ROOT / "roles" / "_common" / "tasks" / f"{entry}.yml").read_text()
        for name, option in (spec.get("options") or {}).items():
            assert name.startswith("_common_"), name
            assert name in text, f"_common/{entry} documents {name}, which its tasks never read"
            assert option.get("description") and option.get("type"), f"_common/{entry}: {name}"
