"""Helpers shared by the testinfra verifiers of every molecule scenario."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
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


LOG_ENTRY = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) p=(\d+) u=\S+ n=\S+ \w+\| (.*)$")
LOG_TASK = re.compile(r"^TASK \[(.*)\] \**$")
LOG_RESULT = re.compile(r"^(ok|changed|skipping|failed|fatal): \[([^\]\s]+)")


@dataclass
class LoggedTask:
    """One task of a run, from ANSIBLE_LOG_PATH: its name, when it began and ended (the next task's start, in
    seconds since the epoch) and what each host reported (every status a host's items reported)."""

    name: str
    began: float
    ended: float
    results: dict[str, set[str]]


def logged_runs(path: Path) -> list[list[LoggedTask]]:
    """The runs in an Ansible log, oldest first, each a list of its tasks; a run is one process ID."""
    runs: dict[str, list[LoggedTask]] = {}
    last: dict[str, float] = {}
    for line in path.read_text().splitlines():
        entry = LOG_ENTRY.match(line)
        if not entry:
            continue
        stamp = datetime.strptime(entry[1], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
        pid, text = entry[2], entry[3]
        tasks = runs.setdefault(pid, [])
        last[pid] = stamp
        if text.startswith(("TASK [", "PLAY [", "PLAY RECAP")) and tasks and tasks[-1].ended == 0:
            tasks[-1].ended = stamp
        task = LOG_TASK.match(text)
        if task:
            tasks.append(LoggedTask(task[1], stamp, 0, {}))
        result = LOG_RESULT.match(text)
        if result and tasks:
            tasks[-1].results.setdefault(result[2], set()).add(result[1])
    for pid, tasks in runs.items():
        if tasks and tasks[-1].ended == 0:
            tasks[-1].ended = last[pid]
    return list(runs.values())


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


# --- Workflows driven on a deployed host, shared by the scenarios ---------------------------------
# `temporal` turns CLI arguments into a command line on the host (address and TLS included);
# `workers_cli` is the bundled workers' command there.

ARTIFACTS = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", ".")) / "artifacts"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--window-size=1600,1000", "--virtual-time-budget=20000",
]  # fmt: skip


def run_json(host, command: str, expect_rc: int = 0):
    result = host.run(command)
    assert result.rc == expect_rc, f"{command}\nrc={result.rc}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout) if result.stdout.strip() else None


ORDER_ITEMS = [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}]


def execute_an_order(host, temporal, prefix: str = "order") -> str:
    """An OrderWorkflow started with the real temporal CLI and waited for; returns its workflow ID."""
    workflow_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    order = {"order_id": workflow_id, "items": ORDER_ITEMS, "address": "1 Main St", "email": "a@example.com"}
    result = host.run(temporal(f"workflow execute --type OrderWorkflow --task-queue orders --workflow-id {workflow_id} --input '{json.dumps(order)}' -o json"))
    assert result.rc == 0, result.stdout + result.stderr
    return workflow_id


def assert_a_failed_transfer_is_compensated(host, workers_cli: str) -> None:
    """A transfer whose credit always fails refunds its debit; a good one moves exactly its amount."""
    accounts = {"alice": 10_000, "bob": 5_000}
    run_json(host, f"{workers_cli} seed-accounts --balances-json '{json.dumps(accounts)}'")
    before = run_json(host, f"{workers_cli} balances")
    transfer = host.run(
        f"{workers_cli} transfer --id transfer-{uuid.uuid4().hex[:8]} --from alice --to bob --amount 2500 "
        """--fail-times '{"credit": 100}'"""
    )
    assert transfer.rc != 0, "a transfer whose credit always fails must fail"
    assert "credit" in (transfer.stderr + transfer.stdout).lower()
    after = run_json(host, f"{workers_cli} balances")
    assert after["accounts"]["alice"] == before["accounts"]["alice"], "the debit was not refunded"
    assert after["accounts"]["bob"] == before["accounts"]["bob"]
    assert after["total_cents"] == before["total_cents"]

    ok = run_json(host, f"{workers_cli} transfer --from alice --to bob --amount 2500")
    assert ok["status"] == "COMPLETED"
    moved = run_json(host, f"{workers_cli} balances")
    assert moved["accounts"]["alice"] == before["accounts"]["alice"] - 2500
    assert moved["total_cents"] == before["total_cents"]


def assert_injected_failures_are_refused(host, workers_cli: str) -> None:
    """Fault injection off (the default): a transfer that asks for a failure is refused with InvalidInput
    before it moves anything, and a plain one goes through."""
    config = host.check_output("cat /etc/temporal-workers/config.yaml")
    assert "faults:" not in config, config
    accounts = {"carol": 10_000, "dave": 5_000}
    run_json(host, f"{workers_cli} seed-accounts --balances-json '{json.dumps(accounts)}'")
    before = run_json(host, f"{workers_cli} balances")
    refused = host.run(f"{workers_cli} transfer --id refused-{uuid.uuid4().hex[:8]} --from carol --to dave --amount 2500 --fail-times '{{\"credit\": 1}}'")
    assert refused.rc != 0, "a transfer asking for an injected failure must be refused"
    assert "InvalidInput" in refused.stdout + refused.stderr, refused.stdout + refused.stderr
    assert run_json(host, f"{workers_cli} balances")["accounts"] == before["accounts"], "a refused transfer moved money"
    ok = run_json(host, f"{workers_cli} transfer --from carol --to dave --amount 2500")
    assert ok["status"] == "COMPLETED"
    moved = run_json(host, f"{workers_cli} balances")
    assert moved["accounts"]["carol"] == before["accounts"]["carol"] - 2500
    assert moved["total_cents"] == before["total_cents"]


def assert_the_machine_operator_follows_signals(host, temporal, machine: str | None = None) -> None:
    """MachineOperatorWorkflow driven with the real CLI: signals change its state, queries read it. A new one,
    or the one already running as `machine` (still DOWN, as it starts)."""
    if machine is None:
        machine = f"machine-{uuid.uuid4().hex[:8]}"
        start = host.run(temporal(f"workflow start --type MachineOperatorWorkflow --task-queue stateful-machines --workflow-id {machine} --input '\"{machine}\"'"))
        assert start.rc == 0, start.stderr

    def status():
        result = host.run(temporal(f"workflow query --workflow-id {machine} --type getStatus -o json"))
        return json.loads(result.stdout)["queryResult"][0] if result.rc == 0 else None

    assert wait_for(status, 30, "getStatus") == "DOWN"
    for signal, expected in [("setUp", "UP"), ("setUp", "UP"), ("tearDown", "DOWN"), ("tearDown", "DOWN"), ("setUp", "UP")]:
        sent = host.run(temporal(f"workflow signal --workflow-id {machine} --name {signal}"))
        assert sent.rc == 0, sent.stderr
        wait_for(lambda e=expected: status() == e, 30, f"{expected} after {signal}")
    assert host.run(temporal(f"workflow signal --workflow-id {machine} --name complete")).rc == 0
    wait_for(
        lambda: run_json(host, temporal(f"workflow describe --workflow-id {machine} -o json"))["workflowExecutionInfo"]["status"]
        == "WORKFLOW_EXECUTION_STATUS_COMPLETED",
        30,
        "the machine workflow to complete",
    )


def assert_the_web_ui_lists(url: str, workflow_id: str, screenshot: str, *extra_flags: str) -> None:
    """Headless Chromium renders the UI's workflow list, which must show the workflow; the screenshot stays in artifacts/."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium must be installed on the controller (tools/ensure-host-tools.sh does it)"
    ARTIFACTS.mkdir(exist_ok=True)
    flags = [*CHROMIUM_FLAGS, f"--user-data-dir={ARTIFACTS / '.chromium'}", *extra_flags]
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False)
    assert workflow_id in dom.stdout, f"the UI's workflow list does not show {workflow_id}:\n{dom.stdout[:2000]}\n{dom.stderr[-2000:]}"
    path = ARTIFACTS / screenshot
    shot = subprocess.run([chromium, *flags, f"--screenshot={path}", url], capture_output=True, text=True, timeout=120, check=False)
    assert shot.returncode == 0 and path.stat().st_size > 10_000, shot.stderr[-2000:]
