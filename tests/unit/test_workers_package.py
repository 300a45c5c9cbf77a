"""The workers' package metadata: full, with ranged dependencies, and one exact tested set that deployments get."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from render import ROOT

WORKERS = ROOT / "workers"
PROJECT = tomllib.loads((WORKERS / "pyproject.toml").read_text())["project"]


def pins(path: str) -> dict[str, Version]:
    found = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{path}: {line} is not an exact pin"
            found[canonicalize_name(requirement.name)] = Version(spec.version)
    return found


CONSTRAINTS = pins("workers/constraints.txt")


def test_metadata_is_complete() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert (WORKERS / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert PROJECT["authors"] and all(author.get("name") for author in PROJECT["authors"])
    assert any(c.startswith("Programming Language :: Python :: 3.11") for c in PROJECT["classifiers"])
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")], "the license is an SPDX expression"
    assert {"Homepage", "Source", "Issues"} <= set(PROJECT["urls"])


def test_runtime_dependencies_are_ranges_that_hold_the_tested_set() -> None:
    for text in PROJECT["dependencies"]:
        requirement = Requirement(text)
        operators = {spec.operator for spec in requirement.specifier}
        assert ">=" in operators and "<" in operators and "==" not in operators, f"{text} is not a range"
        name = canonicalize_name(requirement.name)
        assert name in CONSTRAINTS, f"{name} is not in constraints.txt"
        assert CONSTRAINTS[name] in requirement.specifier, f"constraints.txt has {name} {CONSTRAINTS[name]}, outside {text}"


def test_the_wheelhouse_is_built_under_the_constraints() -> None:
    script = (ROOT / "tools" / "artifacts.sh").read_text()
    download = re.search(r"pip download[^\n]*(?:\\\n[^\n]*)*durable-temporal-workers", script)
    assert download and '--constraint "$root/workers/constraints.txt"' in download.group(0)


def test_the_tests_run_the_constrained_versions() -> None:
    # The controller venv the workers' tests run in pins the same versions.
    tested = pins_in_requirements_dev()
    shared = set(tested) & set(CONSTRAINTS)
    assert {"temporalio", "psycopg", "psycopg-pool"} <= shared
    assert {name: tested[name] for name in shared} == {name: CONSTRAINTS[name] for name in shared}


def pins_in_requirements_dev() -> dict[str, Version]:
    found = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s#]+)", line)
        if match:
            found[canonicalize_name(match.group(1))] = Version(match.group(2))
    return found
