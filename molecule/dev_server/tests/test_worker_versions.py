"""Workflow code rolled out with worker versioning: two builds of the bundled workers side by side.

Runs after test_worker_package.py, against the dev server: build 0.1.0 of the workers starts
long-lived machine operators; build 0.1.1, whose MachineOperatorWorkflow has a step added (a
timer before each transition), is deployed from the wheelhouse. The operators started on 0.1.0
finish there without a non-determinism error, new ones take the new path on 0.1.1, and once the
server reports 0.1.0 drained, the next run removes its services.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import run_playbook, scenario_dir, wait_for

DEPLOYMENT = "durable-workers"
QUEUE = "stateful-machines"
OLD, NEW = "0.1.0", "0.1.1"
CLI = "temporal --address 127.0.0.1:7233"
# The step build 0.1.1 adds: it changes the commands of every transition, which would fail a
# replay of a 0.1.0 history with a non-determinism error.
ADDED_STEP = "        await workflow.sleep(0.5)  # settle before each transition\n"


def _workflow_cli(host, command: str) -> dict:
    run = host.run(f"{CLI} {command} -o json")
    assert run.rc == 0, run.stdout + run.stderr
    return json.loads(run.stdout)


def _build_of(host, workflow_id: str) -> str:
    described = json.dumps(_workflow_cli(host, f"workflow describe -w {workflow_id}"))
    match = re.search(r'"deploymentVersion":\s*\{[^}]*"buildId":\s*"([^"]+)"', described)
    return match[1] if match else ""


def _history(host, workflow_id: str) -> str:
    run = host.run(f"{CLI} workflow show -w {workflow_id} -o json")
    assert run.rc == 0, run.stdout + run.stderr
    return run.stdout


def _signal(host, workflow_id: str, name: str) -> None:
    run = host.run(f"{CLI} workflow signal -w {workflow_id} --name {name}")
    assert run.rc == 0, run.stdout + run.stderr


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Extra vars per build: 0.1.0 is the project as it is, 0.1.1 a copy with a step added."""
    project = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
    work = tmp_path_factory.mktemp("versions")
    wheelhouse = work / "wheelhouse"
    shutil.copytree(project / ".cache" / "wheelhouse", wheelhouse)
    source = work / "workers"
    shutil.copytree(project / "workers", source, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", ".*_cache", "build"))
    machines = source / "src" / "durable_temporal_workers" / "workflows" / "machines.py"
    code = machines.read_text()
    apply = "    async def _apply(self, machine_id: str, signal: MachineSignal) -> None:\n"
    assert apply in code, "MachineOperatorWorkflow._apply moved: update the step this test adds"
    machines.write_text(code.replace(apply, apply + ADDED_STEP))
    for path, old in ((source / "pyproject.toml", 'version = "0.1.0"'), (source / "src" / "durable_temporal_workers" / "__init__.py", '__version__ = "0.1.0"')):
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, old.replace(OLD, NEW)))
    common = {"temporal_worker_wheelhouse_dir": str(wheelhouse)}
    return {
        OLD: {**common, "temporal_worker_project_dir": str(project / "workers"), "temporal_worker_package_version": OLD},
        NEW: {**common, "temporal_worker_project_dir": str(source), "temporal_worker_package_version": NEW},
    }


@pytest.fixture(scope="module")
def rolled_out(host, builds):
    """0.1.0 deployed and running long-lived operators, then 0.1.1 deployed twice."""
    playbook = scenario_dir() / "worker_versions.yml"
    first = run_playbook(playbook, extra_vars=builds[OLD])
    assert first.returncode == 0, first.output[-4000:]
    old_ids = [f"machine-v1-{n}" for n in range(3)]
    for workflow_id in old_ids:
        _workflow_cli(host, f"""workflow start --type MachineOperatorWorkflow --task-queue {QUEUE} -w {workflow_id} --input '"{workflow_id}"'""")
        _signal(host, workflow_id, "setUp")
    for workflow_id in old_ids:
        wait_for(lambda workflow_id=workflow_id: _build_of(host, workflow_id) == OLD, 60, f"{workflow_id} pinned to {OLD}")
    rollout = run_playbook(playbook, extra_vars=builds[NEW])
    assert rollout.returncode == 0, rollout.output[-4000:]
    again = run_playbook(playbook, extra_vars=builds[NEW])
    checked = run_playbook(playbook, "--check", "--diff", extra_vars=builds[NEW])
    return {"old_ids": old_ids, "rollout": rollout, "again": again, "checked": checked}


def test_both_builds_run_side_by_side_and_the_new_one_is_current(host, rolled_out):
    for run in (rolled_out["again"], rolled_out["checked"]):
        assert run.returncode == 0, run.output[-4000:]
        assert all(counts["changed"] == 0 for counts in run.recap().values()), "\n".join(run.changed_tasks())
    for build in (OLD, NEW):
        service = host.service(f"temporal-worker-{build}@{QUEUE}")
        assert service.is_running, build
        assert host.file(f"/opt/temporal-workers/versions/{build}/venv/bin/temporal-workers").exists
        assert host.file(f"/etc/temporal-workers/{build}/config.yaml").exists
    # The old build gave the metrics port to the new one.
    assert host.file(f"/etc/systemd/system/temporal-worker-{OLD}@.service.d/draining.conf").exists
    new_pid = host.check_output(f"systemctl show -p MainPID --value temporal-worker-{NEW}@{QUEUE}")
    wait_for(lambda: f"pid={new_pid}," in host.check_output("ss -ltnpH 'sport = :9466'"), 60, f"{NEW} serving the metrics port")
    routing = _workflow_cli(host, f"worker deployment describe --name {DEPLOYMENT}")["routingConfig"]
    assert routing["currentVersionBuildID"] == NEW, routing


def test_old_workflows_finish_on_the_old_build_and_new_ones_take_the_new_path(host, rolled_out):
    old_ids = rolled_out["old_ids"]
    new_ids = [f"machine-v2-{n}" for n in range(3)]
    for workflow_id in new_ids:
        _workflow_cli(host, f"""workflow start --type MachineOperatorWorkflow --task-queue {QUEUE} -w {workflow_id} --input '"{workflow_id}"'""")
        _signal(host, workflow_id, "setUp")
    for workflow_id in old_ids:
        _signal(host, workflow_id, "tearDown")
    for workflow_id in old_ids + new_ids:
        _signal(host, workflow_id, "complete")
    results = {workflow_id: _workflow_cli(host, f"workflow result -w {workflow_id}")["result"] for workflow_id in old_ids + new_ids}
    assert results == {**dict.fromkeys(old_ids, "DOWN"), **dict.fromkeys(new_ids, "UP")}
    for workflow_id in old_ids:
        assert _build_of(host, workflow_id) == OLD
        history = _history(host, workflow_id)
        assert not re.search(r"TIMER_?STARTED", history, re.I), f"{workflow_id} took the new path"
        assert not re.search(r"WORKFLOW_?TASK_?FAILED", history, re.I), f"{workflow_id}: a workflow task failed"
    for workflow_id in new_ids:
        assert _build_of(host, workflow_id) == NEW
        history = _history(host, workflow_id)
        assert re.search(r"TIMER_?STARTED", history, re.I), f"{workflow_id} missed the added step"
        assert not re.search(r"WORKFLOW_?TASK_?FAILED", history, re.I), f"{workflow_id}: a workflow task failed"


def test_the_drained_build_is_removed_by_the_next_run(host, builds, rolled_out):
    def drained() -> bool:
        described = _workflow_cli(host, f"worker deployment describe-version --deployment-name {DEPLOYMENT} --build-id {OLD}")
        return described["drainageInfo"]["drainageStatus"].lower().endswith("drained")

    started = time.monotonic()
    wait_for(drained, 120, f"{OLD} drained")
    print(f"{OLD} reported drained {time.monotonic() - started:.1f} s after its last workflow closed")
    playbook = scenario_dir() / "worker_versions.yml"
    retire = run_playbook(playbook, extra_vars=builds[NEW])
    assert retire.returncode == 0, retire.output[-4000:]
    assert host.run(f"systemctl cat temporal-worker-{OLD}@{QUEUE}").rc != 0
    assert not host.file(f"/etc/systemd/system/temporal-worker-{OLD}@.service").exists
    assert not host.file(f"/opt/temporal-workers/versions/{OLD}").exists
    assert not host.file(f"/etc/temporal-workers/{OLD}").exists
    assert host.service(f"temporal-worker-{NEW}@{QUEUE}").is_running
    again = run_playbook(playbook, extra_vars=builds[NEW])
    assert again.returncode == 0, again.output[-4000:]
    assert all(counts["changed"] == 0 for counts in again.recap().values()), "\n".join(again.changed_tasks())


def test_turning_versioning_off_is_refused_before_any_change(host, builds, rolled_out):
    run = run_playbook(scenario_dir() / "worker_versions.yml", extra_vars={**builds[NEW], "temporal_worker_deployment_name": ""})
    assert run.returncode != 0
    assert "temporal_worker_deployment_name cannot be empty" in run.output
    assert host.service(f"temporal-worker-{NEW}@{QUEUE}").is_running


def test_absent_removes_every_build(host, builds, rolled_out):
    run = run_playbook(scenario_dir() / "worker_versions.yml", extra_vars={**builds[NEW], "temporal_worker_state": "absent", "temporal_worker_purge_data": True})
    assert run.returncode == 0, run.output[-4000:]
    assert host.run("systemctl list-units --all --plain --no-legend 'temporal-worker*'").stdout.strip() == ""
    assert not host.file("/opt/temporal-workers").exists
    assert host.service("temporal-dev-server").is_running
