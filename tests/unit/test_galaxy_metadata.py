"""galaxy.yml and meta/ say what the collection needs, no more and no less.

The collections declared in galaxy.yml are exactly those whose modules, lookups or filters the roles
and playbooks use, each with the oldest release that has every module and option used (read from the
modules' own documentation as installed); requires_ansible is the oldest ansible-core the tests run.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path
from typing import Any, Iterator

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version
from render import ROOT
from role_tasks import task_files, tasks_of

GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
OURS = ("ansible.builtin", "durable.temporal")
FQCN = re.compile(r"^([a-z0-9_]+)\.([a-z0-9_]+)\.([a-z0-9_]+)$")
PLUGIN_IN_TEMPLATE = re.compile(r"(?:lookup\(\s*['\"]|query\(\s*['\"]|\|\s*)([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+")


def module_calls() -> Iterator[tuple[str, Any, Path]]:
    """(FQCN of a module, its arguments, file) for every task, and the modules named in module_defaults."""
    for path, task in tasks_of(playbooks=True):
        for key, value in task.items():
            if FQCN.match(str(key)):
                yield key, value, path
        for key in task.get("module_defaults") or {}:
            if FQCN.match(str(key)):
                yield key, None, path


def collections_in_templates() -> set[str]:
    found = set()
    for path in [*task_files(playbooks=True), *(ROOT / "roles").glob("*/templates/*"), *(ROOT / "roles").glob("*/vars/*.yml"),
                 *(ROOT / "roles").glob("*/defaults/*.yml"), *(ROOT / "templates").rglob("*.j2")]:
        found |= set(PLUGIN_IN_TEMPLATE.findall(path.read_text()))
    return found


def used_collections() -> set[str]:
    used = {".".join(name.split(".")[:2]) for name, _, _ in module_calls()} | collections_in_templates()
    return {name for name in used if name not in OURS}


def module_documentation(fqcn: str) -> dict[str, Any]:
    namespace, collection, module = fqcn.split(".")
    spec = importlib.util.find_spec(f"ansible_collections.{namespace}.{collection}")
    assert spec and spec.submodule_search_locations, f"{namespace}.{collection} is not installed for the tests"
    source = Path(list(spec.submodule_search_locations)[0], "plugins", "modules", module + ".py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION":
            return dict(yaml.safe_load(ast.literal_eval(node.value)))
    raise AssertionError(f"no DOCUMENTATION in {fqcn}")


def version(text: Any) -> Version | None:
    try:
        return Version(str(text))
    except InvalidVersion:
        return None


def oldest_release_needed(collection: str) -> tuple[Version, list[str]]:
    """The newest version_added among the modules of the collection used and the options they are given."""
    needed: list[tuple[Version, str]] = [(Version("0"), "")]
    for name, arguments, path in module_calls():
        if not name.startswith(collection + "."):
            continue
        doc = module_documentation(name)
        added = version(doc.get("version_added"))
        if added:
            needed.append((added, f"{name} ({path.relative_to(ROOT)})"))
        if isinstance(arguments, dict):
            for option in arguments:
                added = version((doc.get("options") or {}).get(option, {}).get("version_added"))
                if added:
                    needed.append((added, f"{name} {option} ({path.relative_to(ROOT)})"))
    newest = max(item[0] for item in needed)
    return newest, [why for added, why in needed if added == newest]


def test_the_roles_use_modules_of_collections() -> None:
    # The parser sees what the roles are known to use; an empty set would make the next tests vacuous.
    names = {name for name, _, _ in module_calls()}
    assert {"community.postgresql.postgresql_pg_hba", "community.crypto.x509_certificate_pipe", "durable.temporal.files"} <= names


def test_dependencies_are_the_collections_the_roles_use() -> None:
    assert set(GALAXY["dependencies"]) == used_collections()


def test_each_lower_bound_is_the_oldest_release_with_what_is_used() -> None:
    for collection, requirement in GALAXY["dependencies"].items():
        bound = re.fullmatch(r">=\s*([0-9.]+)", requirement)
        assert bound, f"{collection}: {requirement!r} is not a plain lower bound"
        newest, because = oldest_release_needed(collection)
        assert Version(bound.group(1)) == newest, f"{collection} {requirement}, but {newest} is needed for {because}"


def pinned(requirements: Path, name: str) -> Version:
    match = re.search(rf"^{re.escape(name)}==([0-9.]+)", requirements.read_text(), re.MULTILINE)
    assert match, f"{name} is not pinned in {requirements}"
    return Version(match.group(1))


def test_requires_ansible_is_the_oldest_ansible_core_tested() -> None:
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    specifier = SpecifierSet(runtime["requires_ansible"])
    tested = {pinned(ROOT / "requirements-dev.txt", "ansible-core"), pinned(ROOT / "tests" / "requirements-galaxy.txt", "ansible-core")}
    oldest = min(tested)
    lower = [Version(spec.version) for spec in specifier if spec.operator == ">="]
    assert lower == [Version(f"{oldest.major}.{oldest.minor}.0")], (runtime["requires_ansible"], sorted(tested))
    assert all(core in specifier for core in tested)


def test_license_and_links() -> None:
    assert GALAXY["license"] == ["Apache-2.0"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    for field in ("repository", "documentation", "homepage", "issues"):
        assert str(GALAXY.get(field, "")).startswith("https://"), field


def test_target_python_is_declared_for_ansible_test() -> None:
    config = yaml.safe_load((ROOT / "tests" / "config.yml").read_text())
    requires = SpecifierSet(config["modules"]["python_requires"])
    # Debian 12's python3, which the roles target and the sanity run uses (--python 3.11).
    assert "3.11" in requires and "3.10" not in requires


def test_each_role_states_the_same_oldest_ansible() -> None:
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    (lower,) = [spec.version for spec in SpecifierSet(runtime["requires_ansible"]) if spec.operator == ">="]
    for meta in sorted((ROOT / "roles").glob("*/meta/main.yml")):
        stated = str(yaml.safe_load(meta.read_text())["galaxy_info"]["min_ansible_version"])
        assert Version(stated) == Version(lower), f"{meta.relative_to(ROOT)}: {stated}, requires_ansible {lower}"
