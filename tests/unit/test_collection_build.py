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
