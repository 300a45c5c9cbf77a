"""Verifies the stack deployed across four hosts with site.yml, and that a batch of workflows
survives worker kills, a worker host stopped and started, and a server restart."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import assert_check_mode_changes_nothing, instance, run_playbook, scenario_dir, wait_for

SERVER_IP = "172.30.66.10"
MONITOR_IP = "172.30.66.30"
FRONTEND = f"{SERVER_IP}:7233"
WORKER_HOSTS = ["worker1", "worker2"]
QUEUES = ["orders", "sagas", "stateful-machines", "loyalty"]
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
ARTIFACTS = REPO / "artifacts"
STORE_PASSWORD = "multihost-store-secret"  # the scenario's inventory (molecule.yml)
RESULT_LINE = re.compile(r"^RESULT (\{.*\})$", re.MULTILINE)


def prometheus_targets() -> list[dict]:
    """Asked on the monitoring host: Prometheus listens on its loopback only."""
    result = instance("monitor").run("curl -fsS http://127.0.0.1:9090/api/v1/targets")
    return json.loads(result.stdout)["data"]["activeTargets"] if result.rc == 0 else []


def assert_every_target_up(timeout: float) -> None:
    def all_up():
        targets = prometheus_targets()
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    up = wait_for(all_up, timeout, "every Prometheus target up")
    workers = [t for t in up if t["labels"]["job"] == "temporal-workers"]
    assert len(workers) == len(QUEUES) * len(WORKER_HOSTS), workers
    assert {t["labels"]["instance"].split(":")[0] for t in workers} == {"172.30.66.21", "172.30.66.22"}
    assert [t["labels"]["instance"] for t in up if t["labels"]["job"] == "temporal-server"] == [f"{SERVER_IP}:9233"]


def store_requests(key_prefix: str) -> int:
    """Requests the shared store logged for keys starting with key_prefix, read on the database host."""
    query = f"SELECT count(*) FROM requests WHERE key LIKE '{key_prefix}%'"
    out = instance("temporal").check_output(f'runuser -u postgres -- psql -d temporal_workers -tAc "{query}"')
    return int(out)


def test_check_mode_on_the_converged_hosts_changes_nothing(check_mode_run):
    assert_check_mode_changes_nothing(check_mode_run)


def test_the_server_host_listens_for_the_other_hosts():
    server = instance("temporal")
    assert server.service("temporal-dev-server").is_running
    assert server.socket("tcp://0.0.0.0:7233").is_listening
    assert server.service("postgresql@15-main").is_running
    # The dev server keeps the workflows in its SQLite file, not in PostgreSQL.
    databases = server.check_output("runuser -u postgres -- psql -tAc 'SELECT datname FROM pg_database ORDER BY 1'").split()
    assert "temporal_workers" in databases and "temporal" not in databases


@pytest.mark.parametrize("name", WORKER_HOSTS)
def test_each_worker_host_serves_every_queue_from_the_shared_store(name):
    host = instance(name)
    for queue in QUEUES:
        assert host.service(f"temporal-worker@{queue}").is_running, queue
    config = host.file("/etc/temporal-workers/config.yaml")
    assert f"url: postgresql://temporal_workers@{SERVER_IP}:5432/temporal_workers" in config.content_string
    assert STORE_PASSWORD not in config.content_string
    secret = host.file("/etc/temporal-workers/store-password")
    assert (secret.user, secret.group, secret.mode) == ("root", "temporal-worker", 0o640)
    assert secret.content_string.strip() == STORE_PASSWORD
    pids = host.check_output("systemctl show -p MainPID --value 'temporal-worker@*'").split()
    for pid in pids:
        assert STORE_PASSWORD not in host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
        assert STORE_PASSWORD not in host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    # Per-host SQLite files would split the ledger between hosts.
    assert not host.file("/var/lib/temporal-workers/store.db").exists


def test_the_store_lets_in_only_the_worker_hosts():
    rules = instance("temporal").check_output(
        'runuser -u postgres -- psql -tAc "SELECT database[1], address, netmask, auth_method FROM pg_hba_file_rules'
        " WHERE 'temporal_workers' = ANY(user_name) ORDER BY address\""
    )
    assert rules.splitlines() == [
        "temporal_workers|172.30.66.21|255.255.255.255|scram-sha-256",
        "temporal_workers|172.30.66.22|255.255.255.255|scram-sha-256",
    ]


def test_prometheus_sees_every_target_up_before_the_faults():
    assert instance("monitor").service("prometheus").is_running
    assert_every_target_up(120)


def test_only_what_the_others_need_listens_beyond_loopback():
    """Worker metrics on the worker hosts' own addresses, for Prometheus on another host; Prometheus on its loopback."""
    for name, address in [("worker1", "172.30.66.21"), ("worker2", "172.30.66.22")]:
        listening = instance(name).check_output("ss -ltnH")
        for port in range(9464, 9468):
            assert f"{address}:{port} " in listening, f"{name}: {port} not on {address}:\n{listening}"
            assert f"0.0.0.0:{port} " not in listening and f"*:{port} " not in listening, listening
    monitor = instance("monitor").check_output("ss -ltnH")
    assert "127.0.0.1:9090 " in monitor and "0.0.0.0:9090 " not in monitor and "*:9090 " not in monitor, monitor
    refused = subprocess.run(["curl", "-sS", "-m", "5", f"http://{MONITOR_IP}:9090/-/ready"], capture_output=True, text=True, check=False)
    assert refused.returncode != 0, "Prometheus answers from outside its host"


def test_bad_variables_stop_the_play_before_any_host_changes():
    """Each case is refused in the check play; the marker directories prove no host went on to deploy."""
    markers = {
        "temporal_dev_server_data_dir": "/var/lib/must-not-exist-server",
        "temporal_worker_data_dir": "/var/lib/must-not-exist-workers",
        "temporal_prometheus_data_dir": "/var/lib/must-not-exist-prometheus",
    }
    cases = [
        # A password in the URL would end up in a config file.
        (
            {"temporal_worker_store_url": "postgresql://temporal_workers:leaked-secret@172.30.66.10/temporal_workers"},
            "temporal_worker_store_url",
        ),
        # Two worker hosts with a SQLite file each.
        ({"temporal_worker_store_url": ""}, "need one shared store"),
        ({"temporal_dev_server_port": 70000}, "temporal_dev_server_port"),
        ({"temporal_postgresql_worker_store_password": ""}, "temporal_postgresql_worker_store_password"),
    ]
    for bad, named in cases:
        run = run_playbook(scenario_dir() / "converge.yml", extra_vars=bad | markers)
        assert run.returncode != 0, f"{bad} was accepted"
        assert named in run.output, f"the error for {bad} does not say {named!r}:\n{run.output[-3000:]}"
        assert "leaked-secret" not in run.output
        changed = {host: counts["changed"] for host, counts in run.recap().items() if counts["changed"]}
        assert not changed, f"{bad}: hosts changed before the play stopped: {changed}"
        for name in ["temporal", *WORKER_HOSTS, "monitor"]:
            for marker in markers.values():
                assert not instance(name).file(marker).exists, f"{bad}: {name} got {marker}"


def test_the_fault_test_loses_nothing_duplicates_nothing_and_conserves_money():
    ARTIFACTS.mkdir(exist_ok=True)
    command = [
        sys.executable,
        str(REPO / "tests" / "fault" / "fault_load.py"),
        "--address",
        FRONTEND,
        "--docker",
        "temporal,worker1,worker2",
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    (ARTIFACTS / "fault-load.txt").write_text(f"$ {' '.join(command)}\n{run.stdout}\n{run.stderr}")
    match = RESULT_LINE.search(run.stdout)
    assert match, f"no RESULT line:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    figures = json.loads(match[1])
    assert figures["started"] >= 700
    assert len(figures["faults"]) == 4, figures["faults"]
    # Every fault hit a running batch, not an idle stack.
    assert all(fault["running_workflows"] > 0 for fault in figures["faults"]), figures["faults"]
    assert figures["lost"] == 0, figures["lost_ids"]
    assert figures["duplicated_side_effects"] == 0
    # One order in ten (50) loses its charge's reply once: each retry found the charge instead of
    # repeating it. A fault that kills that attempt before its commit leaves nothing to find, so a
    # few of the 50 may not count; no duplicate and the money conserved are the guarantee.
    assert figures["deduplicated_side_effects"] >= 40
    assert figures["unbalanced_accounts"] == []
    assert figures["money_before_cents"] == figures["money_after_cents"]
    assert figures["started"] == figures["completed"] + figures["failed_as_designed"]
    # The designed failures (1 order in 20, 2 transfers in 10) ended as designed, not as successes.
    assert figures["failed_as_designed"] == 25 + 40, figures["outcomes"]
    assert run.returncode == 0, run.stdout[-3000:]


def test_prometheus_sees_every_target_up_after_recovery():
    assert_every_target_up(180)


def test_worker_killed_by_the_fault_test_was_restarted_by_systemd():
    restarts = instance("worker1").check_output("systemctl show -p NRestarts --value temporal-worker@orders")
    assert int(restarts) >= 1


@pytest.fixture(scope="module")
def server():
    return instance("temporal")


def start_order(server, workflow_id: str, payload: str) -> subprocess.CompletedProcess:
    return server.run(
        f"temporal workflow start --type OrderWorkflow --task-queue orders --workflow-id {workflow_id} "
        f"--input '{payload}' --address 127.0.0.1:7233"
    )


def test_malformed_json_is_refused_before_anything_starts(server):
    workflow_id = f"bad-json-{uuid.uuid4().hex[:8]}"
    started = start_order(server, workflow_id, '{"order_id": "x", "items": [')
    assert started.rc != 0
    assert "json" in (started.stdout + started.stderr).lower()
    assert server.run(f"temporal workflow describe --workflow-id {workflow_id} --address 127.0.0.1:7233").rc != 0


def wait_closed(server, workflow_id: str) -> dict:
    def closed():
        result = server.run(f"temporal workflow describe --workflow-id {workflow_id} --address 127.0.0.1:7233 -o json")
        if result.rc != 0:
            return None
        info = json.loads(result.stdout)["workflowExecutionInfo"]
        return info if info["status"] != "WORKFLOW_EXECUTION_STATUS_RUNNING" else None

    return wait_for(closed, 60, f"{workflow_id} to close")


def assert_failed_cleanly(server, workflow_id: str, named: str) -> None:
    """Failed (not stuck retrying), with the field named, no activity scheduled and nothing in the store."""
    info = wait_closed(server, workflow_id)
    assert info["status"] == "WORKFLOW_EXECUTION_STATUS_FAILED", info
    history = server.check_output(f"temporal workflow show --workflow-id {workflow_id} --address 127.0.0.1:7233 -o json")
    events = [event["eventType"] for event in json.loads(history)["events"]]
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in events, events
    assert "EVENT_TYPE_WORKFLOW_TASK_FAILED" not in events, events
    failure = json.dumps(json.loads(history)["events"][-1])
    assert "InvalidInput" in failure and named in failure, failure[:2000]
    assert store_requests(f"{workflow_id}:") == 0


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ('{"order_id": 5, "items": "many"}', "items: expected a list"),
        ('{"order_id": "o", "items": [{"sku": "A", "quantity": "two", "unit_price_cents": 100}], "address": "1 Main St"}', "quantity"),
        ('{"order_id": "o", "address": "1 Main St"}', "items: required field is missing"),
    ],
)
def test_wrong_types_fail_the_workflow_at_once_and_leave_nothing_half_done(server, payload, named):
    workflow_id = f"bad-types-{uuid.uuid4().hex[:8]}"
    started = start_order(server, workflow_id, payload)
    assert started.rc == 0, started.stdout + started.stderr
    assert_failed_cleanly(server, workflow_id, named)


def test_an_oversized_field_fails_the_workflow_and_an_oversized_payload_is_refused_at_start(server):
    big_field, too_big = f"big-{uuid.uuid4().hex[:8]}", f"huge-{uuid.uuid4().hex[:8]}"
    order = 'import json,sys; print(json.dumps({"order_id": "o", "items": [], "address": "x" * int(sys.argv[1])}))'
    server.check_output(f"python3 -c '{order}' 1000000 > /root/big.json && python3 -c '{order}' 3000000 > /root/huge.json")
    common = "--type OrderWorkflow --task-queue orders --address 127.0.0.1:7233"
    started = server.run(f"temporal workflow start {common} --workflow-id {big_field} --input-file /root/big.json")
    assert started.rc == 0, started.stderr
    assert_failed_cleanly(server, big_field, "address: at most 1000 characters")
    refused = server.run(f"temporal workflow start {common} --workflow-id {too_big} --input-file /root/huge.json")
    assert refused.rc != 0
    assert "size exceeds limit" in refused.stdout + refused.stderr
    assert server.run(f"temporal workflow describe --workflow-id {too_big} --address 127.0.0.1:7233").rc != 0
