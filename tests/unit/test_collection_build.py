"""The collection builds into an artifact that installs and whose roles and plugins resolve by FQCN."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_build_install_and_resolve_by_fqcn(tmp_path: Path) -> None:
    # Away from the checkout and its ansible.cfg, which links the sources in as durable.temporal.
    collections = tmp_path / "collections"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_HOME=str(tmp_path / "home"))
    run("ansible-galaxy", "collection", "build", str(ROOT), "--output-path", str(tmp_path), env=env, cwd=tmp_path)
    artifact = next(tmp_path.glob("durable-temporal-*.tar.gz"))
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    for expected in ("roles/cli/tasks/main.yml", "roles/dev_server/meta/argument_specs.yml", "templates/systemd/service.j2", "plugins/filter/systemd.py"):
        assert expected in names, f"{expected} missing from the artifact"
    assert not [n for n in names if n.startswith(("molecule/", "tests/", ".cache/", ".venv/", "tools/"))], "test tooling leaked into the artifact"

    run("ansible-galaxy", "collection", "install", "--no-deps", "-p", str(collections), str(artifact), env=env, cwd=tmp_path)
    listed = run("ansible-doc", "-t", "role", "-l", "durable.temporal", env=env, cwd=tmp_path)
    assert "durable.temporal.cli" in listed and "durable.temporal.dev_server" in listed, listed

    playbook = tmp_path / "fqcn.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.assert:\n"
        "        that: (['/bin/x', 'a b', 'k=\"v\"', '50%'] | durable.temporal.systemd_command) == '\"/bin/x\" \"a b\" \"k=\\\\\"v\\\\\"\" \"50%%\"'\n"
    )
    run("ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook), env=env, cwd=tmp_path)
    run("ansible-playbook", "-i", "localhost,", "--syntax-check", "durable.temporal.site", env=env, cwd=tmp_path)


# What a user installs: the roles with what they read at run time, the plugins, the playbooks, the
# workers' package sources (the worker role builds its wheel from them), the docs and the metadata.
CONTENT_ROOTS = ("roles/", "plugins/", "playbooks/", "templates/", "meta/", "docs/", "changelogs/", "inventories/examples/")
CONTENT_FILES = {"README.md", "CHANGELOG.md", "LICENSE", "site.yml", "MANIFEST.json", "FILES.json"}
WORKERS_FILES = {
    "workers/pyproject.toml", "workers/README.md", "workers/config.example.yaml", "workers/constraints.txt", "workers/LICENSE",
}
# What a working tree gathers that is not content: tool caches, build metadata, local collections.
LITTER = (
    ".pytest_cache/v/cache/lastfailed",
    "workers/.pytest_cache/README.md",
    "workers/src/durable_temporal_workers.egg-info/PKG-INFO",
    ".ansible/collections/ansible_collections/x/y/MANIFEST.json",
    "roles/cli/.ansible/tmp/state",
    "plugins/modules/__pycache__/files.cpython-311.pyc",
    ".ruff_cache/CACHEDIR.TAG",
    "workers/.mypy_cache/3.11/cache.db",
    "roles/server/files/temporal-config-check.orig",
    "docs/_build/html/index.html",
    "bench/results/logs/run.log",
    "durable-temporal-0.0.1.tar.gz",
)


def is_content(name: str) -> bool:
    if any(part.startswith(".") or part == "__pycache__" or part.endswith(".egg-info") for part in name.split("/")):
        return False
    if name in CONTENT_FILES or name in WORKERS_FILES:
        return True
    if name.startswith("workers/src/durable_temporal_workers/"):
        return name.endswith((".py", "py.typed"))
    return name.startswith(CONTENT_ROOTS) and not name.startswith("docs/_build/")


def test_the_artifact_of_a_dirty_tree_holds_only_content(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True, timeout=60,
    ).stdout.decode().split("\0")
    for name in filter(None, tracked):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            (tree / name).write_bytes(source.read_bytes())
    for name in LITTER:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("litter\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_HOME"] = str(tmp_path / "home")
    run("ansible-galaxy", "collection", "build", str(tree), "--output-path", str(tmp_path), env=env, cwd=tmp_path)
    with tarfile.open(next(tmp_path.glob("durable-temporal-*.tar.gz"))) as tar:
        files = [member.name for member in tar.getmembers() if not member.isdir()]
    leaked = [name for name in files if not is_content(name)]
    assert not leaked, f"not collection content in the artifact: {leaked}"
    for name in LITTER:
        assert name not in files
    # And the content is all there: every shipped file of the tree, the license among them.
    shipped = {name for name in filter(None, tracked) if (tree / name).is_file() and is_content(name)}
    assert shipped <= set(files), sorted(shipped - set(files))
    assert "LICENSE" in files
