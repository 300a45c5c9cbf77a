"""Helpers shared by the testinfra verifiers of every molecule scenario."""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import testinfra
import yaml

RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)")


@dataclass
class PlaybookRun:
    returncode: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        """Per host counters of the PLAY RECAP, summed over plays."""
        totals: dict[str, dict[str, int]] = {}
        for line in self.output.splitlines():
            match = RECAP_LINE.match(line.strip())
            if match:
                host = totals.setdefault(match["host"], {"ok": 0, "changed": 0, "unreachable": 0, "failed": 0})
                for key in host:
                    host[key] += int(match[key])
        return totals

    def changed_tasks(self) -> list[str]:
        """Names of the tasks that reported a change, for readable failures."""
        names, current = [], ""
        for line in self.output.splitlines():
            if line.startswith("TASK ["):
                current = line
            elif line.startswith("changed:"):
                names.append(f"{current} {line}")
        return names


def scenario_dir() -> Path:
    return Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"])


def instance(name: str):
    """A testinfra host for one of the scenario's instances, by its inventory name."""
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=os.environ["MOLECULE_INVENTORY_FILE"])


@cache
def converge_password() -> str:
    """The one place a scenario's test password lives is its converge playbook."""
    plays = yaml.safe_load((scenario_dir() / "converge.yml").read_text())
    return plays[0]["vars"]["temporal_postgresql_password"]


def run_playbook(playbook: str | Path, *args: str, extra_vars: dict[str, object] | None = None) -> PlaybookRun:
    """Runs a playbook against the scenario's instances, with molecule's own ansible.cfg and inventory."""
    command = ["ansible-playbook", "--inventory", os.environ["MOLECULE_INVENTORY_FILE"], str(playbook), *args]
    for key, value in (extra_vars or {}).items():
        command += ["--extra-vars", f"{key}={value}" if isinstance(value, str) else f'{{"{key}": {_json(value)}}}']
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="false", ANSIBLE_NOCOLOR="1", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml", ANSIBLE_STDOUT_CALLBACK="default")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
    return PlaybookRun(result.returncode, result.stdout + result.stderr)


def _json(value: object) -> str:
    import json

    return json.dumps(value)


@pytest.fixture(scope="session")
def converge_playbook() -> Path:
    return scenario_dir() / "converge.yml"


@pytest.fixture(scope="session")
def check_mode_run(converge_playbook: Path) -> PlaybookRun:
    """The converge playbook in --check --diff mode against the converged instances."""
    return run_playbook(converge_playbook, "--check", "--diff")


def assert_check_mode_changes_nothing(run: PlaybookRun) -> None:
    assert run.returncode == 0, run.output[-4000:]
    recap = run.recap()
    assert recap, f"no PLAY RECAP in the output:\n{run.output[-4000:]}"
    changed = {host: counts["changed"] for host, counts in recap.items() if counts["changed"]}
    assert not changed, f"--check on a converged host reported changes {changed}:\n" + "\n".join(run.changed_tasks())


def wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    """Polls predicate until it returns something truthy, and returns that; fails the test after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")
