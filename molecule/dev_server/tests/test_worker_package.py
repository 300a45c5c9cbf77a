"""The worker role with a package of one's own (`temporal_worker_wheel`) instead of the bundled workers.

Runs after test_dev_server.py, against its dev server: builds files/shop_worker into a wheel,
deploys it offline from a copy of the harness's wheelhouse (so the shared one is not touched),
checks what the role promises such a package (one service per queue, its queue's metrics address
and the shared environment in the process's environment), then removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import run_playbook, scenario_dir, wait_for

QUEUES = {"shop-a": 9501, "shop-b": 9502}
ADDRESS = "127.0.0.1:7233"
VENV = "/opt/temporal-workers/venv"


@pytest.fixture(scope="module")
def package_vars(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    work = tmp_path_factory.mktemp("shop")
    source = work / "src"
    shutil.copytree(scenario_dir() / "files" / "shop_worker", source)
    wheels = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(source)],
        check=True,
        timeout=300,
    )
    wheelhouse = work / "wheelhouse"
    shutil.copytree(Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / ".cache" / "wheelhouse", wheelhouse)
    (wheel,) = wheels.glob("shop_worker-1.0.0-*.whl")
    return {"temporal_worker_wheel": str(wheel), "temporal_worker_wheelhouse_dir": str(wheelhouse)}


@pytest.fixture(scope="module")
def deployed(package_vars: dict[str, object]):
    playbook = scenario_dir() / "worker_package.yml"
    first = run_playbook(playbook, extra_vars=package_vars)
    assert first.returncode == 0, first.output[-4000:]
    again = run_playbook(playbook, extra_vars=package_vars)
    return first, again


def test_the_package_deploys_and_a_second_run_changes_nothing(deployed):
    first, again = deployed
    assert any(counts["changed"] for counts in first.recap().values())
    assert again.returncode == 0, again.output[-4000:]
    assert all(counts["changed"] == 0 for counts in again.recap().values()), "\n".join(again.changed_tasks())


@pytest.mark.parametrize("queue", QUEUES)
def test_each_queue_runs_the_package_as_the_worker_user(host, deployed, queue):
    service = host.service(f"temporal-worker@{queue}")
    assert service.is_enabled
    assert service.is_running
    pid = host.check_output(f"systemctl show -p MainPID --value temporal-worker@{queue}")
    assert host.check_output(f"ps -o user= -p {pid}") == "temporal-worker"
    assert host.check_output(f"ps -o args= -p {pid}").endswith(f"{VENV}/bin/shop-worker {queue}")
    assert host.user("temporal-worker").shell == "/usr/sbin/nologin"
    # The bundled workers' config.yaml is theirs alone: a package of one's own gets none.
    assert not host.file("/etc/temporal-workers/config.yaml").exists


@pytest.mark.parametrize(("queue", "port"), QUEUES.items())
def test_each_queue_gets_its_own_metrics_address(host, deployed, queue, port):
    env_file = host.file(f"/etc/temporal-workers/{queue}.env")
    assert env_file.mode == 0o640
    assert (env_file.user, env_file.group) == ("root", "temporal-worker")
    assert env_file.contains(f"^TEMPORAL_WORKERS_METRICS_ADDRESS=127.0.0.1:{port}$")
    wait_for(lambda: host.socket(f"tcp://127.0.0.1:{port}").is_listening, 60, f"{queue}'s metrics port {port}")


@pytest.mark.parametrize(("queue", "port"), QUEUES.items())
def test_a_workflow_runs_through_each_queue(host, deployed, queue, port):
    workflow_id = f"shop-{queue}-{uuid.uuid4().hex[:8]}"
    run = host.run(
        f"temporal workflow execute --type ShopWorkflow --task-queue {queue} --workflow-id {workflow_id} "
        f"""--input '"ada"' --address {ADDRESS} -o json"""
    )
    assert run.rc == 0, run.stdout + run.stderr
    # SHOP_GREETING comes from temporal_worker_environment, through the shared environment file.
    assert json.loads(run.stdout)["result"] == f"hello ada from {queue}"
    metrics = host.check_output(
        f"python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:{port}/metrics\").read().decode())'"
    )
    assert f'task_queue="{queue}"' in metrics


def test_absent_with_purge_removes_the_package_and_keeps_the_dev_server(host, package_vars, deployed):
    run = run_playbook(
        scenario_dir() / "worker_package.yml",
        extra_vars={**package_vars, "temporal_worker_state": "absent", "temporal_worker_purge_data": True},
    )
    assert run.returncode == 0, run.output[-4000:]
    for queue, port in QUEUES.items():
        assert host.run(f"systemctl cat temporal-worker@{queue}").rc != 0
        assert not host.socket(f"tcp://127.0.0.1:{port}").is_listening
    assert not host.file(VENV).exists
    assert not host.file("/etc/temporal-workers").exists
    assert not host.user("temporal-worker").exists
    assert host.service("temporal-dev-server").is_running
