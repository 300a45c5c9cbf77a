"""Verifies the production cluster deployed across five hosts with site.yml: two server hosts that share
the history shards through membership, the workers' shared store, TLS everywhere, Prometheus, and a
batch of workflows that survives a history service killed, a server host stopped, PostgreSQL restarted
and a worker host killed, with the shard move read from the history services' own metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from conftest import (
    assert_check_mode_changes_nothing,
    assert_the_machine_operator_follows_signals,
    execute_an_order,
    instance,
    logged_runs,
    run_json,
    run_playbook,
    scenario_dir,
    wait_for,
)

SERVERS = {"server1": "172.30.67.11", "server2": "172.30.67.12"}
WORKERS = {"worker1": "172.30.67.21", "worker2": "172.30.67.22"}
PG_IP = "172.30.67.10"
SERVICES = ["frontend", "history", "matching", "worker"]
# temporal_server_metrics_port (9233) plus each service's offset in the per_service layout.
METRICS_PORTS = dict(zip(SERVICES, range(9233, 9237), strict=True))
SHARDS = 8  # temporal_server_num_history_shards in molecule.yml
QUEUES = ["orders", "sagas", "stateful-machines", "loyalty"]
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
PKI = REPO / ".cache" / "pki" / "cluster"  # temporal_tls_pki_dir in molecule.yml
SECRETS = REPO / ".cache" / "secrets" / "cluster"  # temporal_stack_secrets_dir in molecule.yml
ARTIFACTS = REPO / "artifacts"
STORE_PASSWORD = "cluster-store-secret"  # the scenario's inventory (molecule.yml)
CLIENT_ENV = "set -a; . /etc/temporal/client.env; set +a;"
RESULT_LINE = re.compile(r"^RESULT (\{.*\})$", re.MULTILINE)
# The converge upgrades from the release prepare.yml deploys to the one the server role pins.
UPGRADE_FROM = "1.31.2"  # cluster_upgrade_from in molecule.yml
VERSION = yaml.safe_load((REPO / "roles" / "server" / "defaults" / "main.yml").read_text())["temporal_server_version"]
ANSIBLE_LOG = Path(os.environ.get("ANSIBLE_LOG_PATH") or Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", ".")) / "ansible.log")


def cli(args: str) -> str:
    """The temporal CLI on a server host, against that host's own frontend, with its certificate."""
    return f"{CLIENT_ENV} temporal {args}"


def owned_shards(ip: str) -> int:
    """The shards the history service on that host owns, from its numshards_gauge."""
    with urllib.request.urlopen(f"http://{ip}:{METRICS_PORTS['history']}/metrics", timeout=5) as response:
        text = response.read().decode()
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("numshards_gauge")))


def prometheus_targets() -> list[dict]:
    """Asked on the monitoring host: Prometheus listens on its loopback only."""
    result = instance("pg").run("curl -fsS http://127.0.0.1:9090/api/v1/targets")
    return json.loads(result.stdout)["data"]["activeTargets"] if result.rc == 0 else []


def assert_every_target_up(timeout: float) -> None:
    def all_up():
        targets = prometheus_targets()
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    up = wait_for(all_up, timeout, "every Prometheus target up")
    servers = sorted(t["labels"]["instance"] for t in up if t["labels"]["job"] == "temporal-server")
    assert servers == sorted(f"{ip}:{port}" for ip in SERVERS.values() for port in METRICS_PORTS.values()), servers
    workers = [t for t in up if t["labels"]["job"] == "temporal-workers"]
    assert len(workers) == len(QUEUES) * len(WORKERS), workers
    assert {t["labels"]["instance"].split(":")[0] for t in workers} == set(WORKERS.values())


def test_check_mode_on_the_converged_hosts_changes_nothing(check_mode_run):
    assert_check_mode_changes_nothing(check_mode_run)


# --- Upgrade day: the converge took the cluster from cluster_upgrade_from to the pinned release ---------------
# These come first: the fault test and the roll-out below restart services, and these read the start times
# the upgrade left.


@pytest.fixture(scope="module")
def upgrade() -> dict:
    """The converge and the run after it, as the scenario's Ansible log tells them (prepare.yml starts the log
    afresh), and the batch of held orders that ran through the upgrade."""
    runs = logged_runs(ANSIBLE_LOG)
    assert len(runs) >= 2, f"the log {ANSIBLE_LOG} holds {len(runs)} runs, not the converge and the idempotence step"
    converge, rerun = runs[0], runs[1]
    batch = ARTIFACTS / "fault-load-upgrade.txt"
    # The batch holds its orders 300 s from the end of prepare: usually done by now.
    match = wait_for(lambda: batch.exists() and RESULT_LINE.search(batch.read_text()), 1500, "the batch that ran through the upgrade")
    return {"converge": converge, "rerun": rerun, "figures": json.loads(match[1])}


def task(run, name: str, role: str = "server"):
    """The one task of that name in a run."""
    found = [t for t in run if t.name == f"durable.temporal.{role} : {name}"]
    assert len(found) == 1, f"{len(found)} tasks named {name!r} in the run"
    return found[0]


def unit_starts(name: str) -> list[float]:
    """When each server service on that host started (ExecMainStartTimestamp, seconds since the epoch)."""
    units = " ".join(f"temporal-server@{service}" for service in SERVICES)
    stamps = instance(name).check_output(f"systemctl show --timestamp=unix -p ExecMainStartTimestamp --value {units}")
    return [float(stamp.lstrip("@")) for stamp in stamps.split()]


def in_flight_at(run: str, moment: float) -> int:
    """How many of the batch's workflows had started and not yet closed at that moment (visibility)."""
    at = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    query = f'WorkflowId STARTS_WITH "{run}-" AND StartTime < "{at}" AND CloseTime > "{at}"'
    # proto3 JSON writes a 64-bit count as a string, and leaves a zero out.
    return int(run_json(instance("server1"), cli(f"workflow count --query '{query}' -o json")).get("count", 0))


def test_the_upgrade_updated_the_schema_once_from_one_host_before_any_new_binary_started(upgrade):
    converge = upgrade["converge"]
    unpacked = task(converge, f"Unpack temporal-server {VERSION}").results
    assert all("changed" in unpacked.get(name, set()) for name in SERVERS), f"the converge was no upgrade: {unpacked}"
    schema = task(converge, "Update the schemas to the ones this version of temporal-sql-tool carries")
    ran = {host for host, statuses in schema.results.items() if statuses & {"ok", "changed"}}
    assert ran == {"server1"}, schema.results
    first_restart = task(converge, "Restart the Temporal server services, one host at a time, on server1")
    assert converge.index(schema) < converge.index(first_restart)
    # And by the hosts' clocks: every service of the new release started after the schema step had ended.
    for name in SERVERS:
        assert min(unit_starts(name)) > schema.ended, (name, unit_starts(name), schema.ended)


def test_the_server_hosts_were_replaced_one_at_a_time_each_serving_again_before_the_next(upgrade):
    converge = upgrade["converge"]
    steps = {
        name: [
            task(converge, f"Restart the Temporal server services, one host at a time, on {name}"),
            task(converge, f"Wait until the frontend answers again on {name}"),
            task(converge, f"Wait until the history service owns shards again on {name}"),
        ]
        for name in SERVERS
    }
    order = [converge.index(step) for name in SERVERS for step in steps[name]]
    assert order == sorted(order), order
    for name in SERVERS:
        assert all(step.results.get(name, set()) & {"ok", "changed"} for step in steps[name]), [s.results for s in steps[name]]
    # server2's services stopped and started only after server1 served again and owned shards.
    assert min(unit_starts("server2")) > steps["server1"][-1].ended
    assert max(unit_starts("server1")) < steps["server1"][-1].ended
    in_flight = {name: in_flight_at(upgrade["figures"]["run"], steps[name][0].began) for name in SERVERS}
    figures = [
        f"{name}: replaced in {steps[name][-1].ended - steps[name][0].began:.1f} s, {in_flight[name]} workflows of the batch in flight as it stopped"
        for name in SERVERS
    ]
    (ARTIFACTS / "upgrade.txt").write_text(
        f"upgrade {UPGRADE_FROM} -> {VERSION}, converge {converge[-1].ended - converge[0].began:.0f} s\n" + "\n".join(figures) + "\n"
    )
    assert all(in_flight.values()), f"nothing was in flight as a host was replaced: {in_flight}"


@pytest.mark.parametrize("name", SERVERS)
def test_every_server_host_runs_and_reports_the_new_release(upgrade, name):
    host = instance(name)
    assert VERSION in host.check_output("temporal-server --version")
    for service in SERVICES:
        pid = host.check_output(f"systemctl show -p MainPID --value temporal-server@{service}")
        assert host.check_output(f"readlink /proc/{pid}/exe") == f"/opt/temporal-server/{VERSION}/temporal-server"
    assert run_json(host, cli("operator cluster describe -o json"))["serverVersion"] == VERSION
    assert not host.file(f"/opt/temporal-server/{UPGRADE_FROM}").exists


def test_the_held_orders_ran_through_the_upgrade_and_nothing_was_lost(upgrade):
    figures = upgrade["figures"]
    assert figures["started"] == 400, figures
    (fault,) = figures["faults"]
    # Still in flight when the play had replaced both server hosts: the orders were held across it.
    assert fault["running_after"] > 0, fault
    assert figures["lost"] == 0, figures["lost_ids"]
    assert figures["duplicated_side_effects"] == 0
    assert figures["money_before_cents"] == figures["money_after_cents"]
    assert figures["started"] == figures["completed"] + figures["failed_as_designed"]


@pytest.mark.parametrize("machine", [f"upgrade-machine-{n}" for n in (1, 2, 3)])
def test_the_machine_operators_started_on_the_old_release_follow_signals_after_it(upgrade, machine):
    assert_the_machine_operator_follows_signals(instance("server1"), cli, machine)


def test_the_run_after_the_upgrade_changed_nothing(upgrade):
    rerun = upgrade["rerun"]
    changed = [(t.name, host) for t in rerun for host, statuses in t.results.items() if "changed" in statuses]
    assert not changed, changed
    assert task(rerun, f"Unpack temporal-server {VERSION}").results.keys() == set(SERVERS)


@pytest.mark.parametrize("name", SERVERS)
def test_each_server_host_runs_every_service_as_a_unit_of_its_own(name):
    host = instance(name)
    for service in SERVICES:
        unit = f"temporal-server@{service}"
        assert host.service(unit).is_running, unit
        assert host.service(unit).is_enabled, unit
        pid = host.check_output(f"systemctl show -p MainPID --value {unit}")
        assert host.check_output("ps -o user= -p %s", pid) == "temporal"
        assert f"--service={service}" in host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
    assert not host.file("/etc/systemd/system/temporal-server.service").exists
    assert not host.file("/etc/temporal/config.yaml").exists
    assert host.service("temporal-ui").is_running


@pytest.mark.parametrize(("name", "ip"), SERVERS.items())
def test_each_server_host_announces_its_own_address_and_listens_there_only(name, ip):
    host = instance(name)
    for service in SERVICES:
        config = host.file(f"/etc/temporal/config-{service}.yaml").content_string
        assert f"broadcastAddress: {ip}" in config
        assert f"listenAddress: {ip}:{METRICS_PORTS[service]}" in config
    listening = host.check_output("ss -ltnH")
    for port in [7233, 7234, 7235, 7239, 6933, 6934, 6935, 6939, 7243, *METRICS_PORTS.values(), 8080]:
        assert f"{ip}:{port} " in listening, f"{name}: {port} not on {ip}:\n{listening}"
        assert f"0.0.0.0:{port} " not in listening and f"*:{port} " not in listening, listening


def test_the_history_shards_are_shared_by_both_server_hosts():
    def shared():
        owners = {name: owned_shards(ip) for name, ip in SERVERS.items()}
        return owners if sum(owners.values()) == SHARDS and all(owners.values()) else None

    wait_for(shared, 120, f"both server hosts owning some of the {SHARDS} shards", interval=3)


def test_the_schemas_are_looked_after_from_one_server_host(check_mode_run):
    """The play includes the schema step on server1 only; server2 waits for it at that task."""
    step = check_mode_run.output.split("TASK [durable.temporal.server : Set up and update the database schemas from one server host]", 1)
    assert len(step) == 2, "no schema step in the play"
    step = step[1].split("TASK [", 1)[0]
    assert "included:" in step and "for server1" in step and "server2" not in step.split("included:", 1)[1].split("\n", 1)[0], step
    schema = instance("pg").check_output("runuser -u postgres -- psql -d temporal -tAc 'SELECT curr_version FROM schema_version'")
    assert schema.strip(), "no schema version in the database"


@pytest.mark.parametrize("name", SERVERS)
def test_a_workflow_started_through_either_frontend_completes(name):
    host = instance(name)
    workflow_id = execute_an_order(host, cli, f"order-via-{name}")
    described = run_json(host, cli(f"workflow describe --workflow-id {workflow_id} -o json"))
    assert described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    # The other frontend sees it too: one cluster, one database.
    other = instance(next(n for n in SERVERS if n != name))
    seen = run_json(other, cli(f"workflow describe --workflow-id {workflow_id} -o json"))
    assert seen["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"


def test_the_worker_hosts_use_different_frontends():
    addresses = {}
    for name in WORKERS:
        config = instance(name).file("/etc/temporal-workers/config.yaml").content_string
        addresses[name] = re.search(r"^\s*address: (\S+)$", config, re.MULTILINE)[1]
    assert sorted(addresses.values()) == sorted(f"{ip}:7233" for ip in SERVERS.values()), addresses


@pytest.mark.parametrize("name", WORKERS)
def test_each_worker_host_serves_every_queue_from_the_shared_store(name):
    host = instance(name)
    for queue in QUEUES:
        assert host.service(f"temporal-worker@{queue}").is_running, queue
    config = host.file("/etc/temporal-workers/config.yaml").content_string
    assert f"url: postgresql://temporal_workers@{PG_IP}:5432/temporal_workers" in config
    assert STORE_PASSWORD not in config
    secret = host.file("/etc/temporal-workers/store-password")
    assert (secret.user, secret.group, secret.mode) == ("root", "temporal-worker", 0o640)
    for pid in host.check_output("systemctl show -p MainPID --value 'temporal-worker@*'").split():
        assert STORE_PASSWORD not in host.check_output(f"tr '\\0' ' ' < /proc/{pid}/cmdline")
        assert STORE_PASSWORD not in host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
    assert not host.file("/var/lib/temporal-workers/store.db").exists


def test_the_databases_let_in_only_the_hosts_that_need_them():
    rules = instance("pg").check_output(
        'runuser -u postgres -- psql -tAc "SELECT type, database[1], user_name[1], address FROM pg_hba_file_rules'
        " WHERE address IS NOT NULL AND address NOT IN ('127.0.0.1', '::1') ORDER BY 2, 3, 4\""
    )
    found = {tuple(line.split("|")) for line in rules.splitlines()}
    servers = {("hostssl", db, "temporal", ip) for db in ("temporal", "temporal_visibility") for ip in SERVERS.values()}
    workers = {("hostssl", "temporal_workers", "temporal_workers", ip) for ip in WORKERS.values()}
    assert servers | workers <= found, found
    assert {row[3] for row in found} <= set(SERVERS.values()) | set(WORKERS.values()), found


def test_the_database_password_was_made_on_the_controller_and_stays_out_of_sight():
    secret = SECRETS / "postgresql-temporal"
    assert secret.stat().st_mode & 0o777 == 0o600
    password = secret.read_text().strip()
    assert len(password) == 32
    for name in SERVERS:
        host = instance(name)
        assert host.check_output("cat /etc/temporal/db-password") == password
        assert password not in host.check_output("cat /etc/temporal/config-*.yaml")


def test_prometheus_sees_every_target_up_before_the_faults():
    assert_every_target_up(120)


def test_bad_variables_stop_every_host_before_any_change():
    """Each case is refused in the check play; the marker directories prove no host went on to deploy."""
    markers = {
        "temporal_server_data_dir": "/var/lib/must-not-exist-server",
        "temporal_worker_data_dir": "/var/lib/must-not-exist-workers",
        "temporal_prometheus_data_dir": "/var/lib/must-not-exist-prometheus",
    }
    cases = [
        # A shard count other than the one the cluster's database was set up with.
        ({"temporal_server_num_history_shards": 16}, "temporal_server_num_history_shards: it is 16, but the cluster"),
        # No broadcast address: the other hosts could not reach this one's services.
        ({"temporal_server_broadcast_address": ""}, "temporal_server_broadcast_address"),
        # Both server hosts announcing one address: two services on one address and membership port.
        ({"temporal_server_broadcast_address": SERVERS["server1"]}, "the same address and port"),
        # A password in the URL would end up in a config file.
        ({"temporal_worker_store_url": f"postgresql://temporal_workers:leaked-secret@{PG_IP}/temporal_workers"}, "temporal_worker_store_url"),
        # Two worker hosts with a SQLite file each.
        ({"temporal_worker_store_url": ""}, "need one shared store"),
        # A release whose schema is older than the one the cluster's database is at.
        ({"temporal_server_version": "1.30.9"}, "1.30.9 is older than the schema in the database"),
    ]
    hosts = ["pg", *SERVERS, *WORKERS]
    for bad, named in cases:
        run = run_playbook(scenario_dir() / "converge.yml", extra_vars=bad | markers)
        assert run.returncode != 0, f"{bad} was accepted"
        assert named in run.output, f"the error for {bad} does not say {named!r}:\n{run.output[-3000:]}"
        assert "leaked-secret" not in run.output
        changed = {host: counts["changed"] for host, counts in run.recap().items() if counts["changed"]}
        assert not changed, f"{bad}: hosts changed before the play stopped: {changed}"
        for name in hosts:
            for marker in markers.values():
                assert not instance(name).file(marker).exists, f"{bad}: {name} got {marker}"


@pytest.fixture(scope="module")
def fault_figures() -> dict:
    ARTIFACTS.mkdir(exist_ok=True)

    def kill(container: str, units: str) -> str:
        return f"docker exec {container} systemctl kill --signal=SIGKILL '{units}'"

    faults = [
        ("history killed on server1", kill("server1", "temporal-server@history")),
        # A clean shutdown: the services leave the ring; docker's own 10 s would SIGKILL the workers too.
        ("server1 stopped", "docker stop --time 90 server1"),
        ("server1 started", "docker start server1"),
        ("postgresql restarted", "docker exec pg systemctl restart postgresql@15-main"),
        ("worker1 killed", kill("worker1", "temporal-worker@*")),
    ]
    command = [
        sys.executable,
        str(REPO / "tests" / "fault" / "fault_load.py"),
        # The client of the batch goes through the server host that stays up.
        "--address", f"{SERVERS['server2']}:7233",
        "--tls-ca", str(PKI / "ca.pem"),
        "--tls-cert", str(PKI / "client.pem"),
        "--tls-key", str(PKI / "client.key"),
        "--shards", str(SHARDS),
    ]  # fmt: skip
    for name, ip in SERVERS.items():
        command += ["--history-metrics", f"{name}=http://{ip}:{METRICS_PORTS['history']}/metrics"]
    for label, fault in faults:
        command += ["--fault", f"{label}={fault}"]
    # A killed history service and a started host settle only once both hosts own shards again, so that the
    # stop finds the cluster whole; the stop settles only once the shards have moved.
    command += ["--recover", "history killed on server1", "--expect-move", "server1 stopped", "--recover", "server1 started"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=2400, check=False)
    (ARTIFACTS / "fault-load-cluster.txt").write_text(f"$ {' '.join(command)}\n{run.stdout}\n{run.stderr}")
    match = RESULT_LINE.search(run.stdout)
    assert match, f"no RESULT line:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return json.loads(match[1]) | {"returncode": run.returncode, "stdout": run.stdout[-3000:]}


def test_the_fault_test_loses_nothing_duplicates_nothing_and_conserves_money(fault_figures):
    figures = fault_figures
    assert figures["started"] >= 700
    assert len(figures["faults"]) == 5, figures["faults"]
    # Every fault hit a running batch, not an idle cluster.
    assert all(fault["running_workflows"] > 0 for fault in figures["faults"]), figures["faults"]
    assert figures["lost"] == 0, figures["lost_ids"]
    assert figures["duplicated_side_effects"] == 0
    assert figures["unbalanced_accounts"] == []
    assert figures["money_before_cents"] == figures["money_after_cents"]
    assert figures["started"] == figures["completed"] + figures["failed_as_designed"]
    # The designed failures (1 order in 20, 2 transfers in 10) ended as designed, not as successes.
    assert figures["failed_as_designed"] == 25 + 40, figures["outcomes"]
    assert figures["returncode"] == 0, figures["stdout"]


def test_the_shards_moved_to_the_surviving_host_and_came_back(fault_figures):
    samples = {sample["after"]: sample for sample in fault_figures["shard_owners"]}
    before, killed = samples["before"], samples["history killed on server1"]
    stopped, started = samples["server1 stopped"], samples["server1 started"]
    assert before["settled"] and before["owners"]["server1"] > 0 and before["owners"]["server2"] > 0, before
    # The killed history service was restarted by systemd and took its shards back.
    assert killed["settled"] and killed["owners"]["server1"] > 0, killed
    assert stopped["settled"] and stopped["owners"] == {"server1": 0, "server2": SHARDS}, stopped
    assert started["settled"] and started["owners"]["server1"] > 0 and started["owners"]["server2"] > 0, started


def test_prometheus_sees_every_target_up_after_recovery(fault_figures):
    assert_every_target_up(180)


def test_the_killed_services_were_restarted_by_systemd(fault_figures):
    assert int(instance("worker1").check_output("systemctl show -p NRestarts --value temporal-worker@orders")) >= 1
    assert instance("server1").service("temporal-server@history").is_running


def test_a_roll_out_restarts_one_host_at_a_time_under_load(fault_figures):
    """A changed server and worker setting, converged while a batch runs: server1 restarts and serves again
    before server2 goes, worker1 drains, starts and polls again before worker2 goes; the batch loses nothing
    and applies no effect twice."""
    log = ARTIFACTS / "worker-roll-out.txt"
    converge = subprocess.Popen(
        [
            "ansible-playbook", "--inventory", os.environ["MOLECULE_INVENTORY_FILE"], str(scenario_dir() / "converge.yml"),
            # A worker setting and a server one: both kinds of host roll, the servers first.
            "--extra-vars", '{"temporal_worker_drain_timeout": 31, "temporal_server_log_level": "warn"}',
        ],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default"),
    )  # fmt: skip
    try:
        # The batch starts as the play begins the workers' rolling restart: worker1 drains what it has, and the
        # batch is in flight by the time worker2 goes.
        marker = "TASK [durable.temporal.worker : Restart the worker hosts that need it one at a time"
        wait_for(lambda: marker in log.read_text() or converge.poll() is not None, 900, "the play to reach the workers", interval=0.5)
        second = "Restart the worker services, each draining its tasks first, on worker2"
        command = [
            sys.executable, str(REPO / "tests" / "fault" / "fault_load.py"),
            "--address", f"{SERVERS['server2']}:7233",
            "--tls-ca", str(PKI / "ca.pem"), "--tls-cert", str(PKI / "client.pem"), "--tls-key", str(PKI / "client.key"),
            "--orders", "300", "--transfers", "100", "--ship-delay", "10", "--fault-delay", "0",
            # Lands at once and lasts until worker1 is back and polling and worker2's restart begins.
            "--fault", f"worker1 rolled, worker2 rolling=timeout 900 sh -c 'until grep -q \"{second}\" {log}; do sleep 0.5; done'",
        ]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        (ARTIFACTS / "fault-load-roll-out.txt").write_text(f"$ {' '.join(command)}\n{run.stdout}\n{run.stderr}")
        assert converge.wait(timeout=900) == 0, log.read_text()[-4000:]
    finally:
        if converge.poll() is None:
            converge.kill()
    output = log.read_text()
    match = RESULT_LINE.search(run.stdout)
    assert match, f"no RESULT line:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    figures = json.loads(match[1])
    # Work was in flight when worker2 began to restart, worker1 having drained, restarted and polled.
    assert figures["faults"][0]["running_after"] > 0, figures["faults"]
    assert figures["lost"] == 0, figures["lost_ids"]
    assert figures["duplicated_side_effects"] == 0
    assert figures["money_before_cents"] == figures["money_after_cents"]
    assert figures["started"] == figures["completed"] + figures["failed_as_designed"]
    # The play's order: worker1 restarted and polling again, then worker2.
    steps = [
        "Restart the worker services, each draining its tasks first, on worker1", "Wait until each task queue is polled again on worker1",
        "Restart the worker services, each draining its tasks first, on worker2", "Wait until each task queue is polled again on worker2",
    ]  # fmt: skip
    server_steps = [
        "Restart the Temporal server services, one host at a time, on server1", "Wait until the frontend answers again on server1",
        "Wait until the history service owns shards again on server1",
        "Restart the Temporal server services, one host at a time, on server2", "Wait until the frontend answers again on server2",
        "Wait until the history service owns shards again on server2",
    ]  # fmt: skip
    positions = [output.find(f"TASK [durable.temporal.server : {step}") for step in server_steps]
    positions += [output.find(f"TASK [durable.temporal.worker : {step}") for step in steps]
    assert -1 not in positions and positions == sorted(positions), dict(zip(server_steps + steps, positions, strict=True))
    # And the hosts' own clocks (one kernel, one monotonic clock): every service of the second host of each
    # kind started after every service of the first.
    units = {"server": [f"temporal-server@{s}" for s in SERVICES], "worker": [f"temporal-worker@{q}" for q in QUEUES]}
    started = {}
    for name in [*SERVERS, *WORKERS]:
        stamps = instance(name).check_output("systemctl show -p ExecMainStartTimestampMonotonic --value " + " ".join(units[name[:-1]]))
        started[name] = [int(stamp) for stamp in stamps.split()]
    assert max(started["server1"]) < min(started["server2"]), started
    assert max(started["worker1"]) < min(started["worker2"]), started
    for name in SERVERS:
        assert "level: warn" in instance(name).check_output("cat /etc/temporal/config-history.yaml")
    for name in WORKERS:
        assert "TimeoutStopSec=46" in instance(name).check_output("cat /etc/systemd/system/temporal-worker@.service")


def start_order(server, workflow_id: str, payload: str) -> subprocess.CompletedProcess:
    return server.run(cli(f"workflow start --type OrderWorkflow --task-queue orders --workflow-id {workflow_id} --input '{payload}'"))


def test_malformed_json_is_refused_before_anything_starts():
    server = instance("server1")
    workflow_id = f"bad-json-{uuid.uuid4().hex[:8]}"
    started = start_order(server, workflow_id, '{"order_id": "x", "items": [')
    assert started.rc != 0
    assert "json" in (started.stdout + started.stderr).lower()
    assert server.run(cli(f"workflow describe --workflow-id {workflow_id}")).rc != 0


def store_requests(key_prefix: str) -> int:
    """Requests the shared store logged for keys starting with key_prefix, read on the database host."""
    query = f"SELECT count(*) FROM requests WHERE key LIKE '{key_prefix}%'"
    return int(instance("pg").check_output(f'runuser -u postgres -- psql -d temporal_workers -tAc "{query}"'))


def wait_closed(server, workflow_id: str) -> dict:
    def closed():
        result = server.run(cli(f"workflow describe --workflow-id {workflow_id} -o json"))
        if result.rc != 0:
            return None
        info = json.loads(result.stdout)["workflowExecutionInfo"]
        return info if info["status"] != "WORKFLOW_EXECUTION_STATUS_RUNNING" else None

    return wait_for(closed, 60, f"{workflow_id} to close")


def assert_failed_cleanly(server, workflow_id: str, named: str) -> None:
    """Failed (not stuck retrying), with the field named, no activity scheduled and nothing in the store."""
    info = wait_closed(server, workflow_id)
    assert info["status"] == "WORKFLOW_EXECUTION_STATUS_FAILED", info
    history = json.loads(server.check_output(cli(f"workflow show --workflow-id {workflow_id} -o json")))
    events = [event["eventType"] for event in history["events"]]
    assert "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED" not in events, events
    assert "EVENT_TYPE_WORKFLOW_TASK_FAILED" not in events, events
    failure = json.dumps(history["events"][-1])
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
def test_wrong_types_fail_the_workflow_at_once_and_leave_nothing_half_done(payload, named):
    server = instance("server2")
    workflow_id = f"bad-types-{uuid.uuid4().hex[:8]}"
    started = start_order(server, workflow_id, payload)
    assert started.rc == 0, started.stdout + started.stderr
    assert_failed_cleanly(server, workflow_id, named)


def test_an_oversized_field_fails_the_workflow_and_an_oversized_payload_is_refused_at_start():
    server = instance("server1")
    big_field, too_big = f"big-{uuid.uuid4().hex[:8]}", f"huge-{uuid.uuid4().hex[:8]}"
    order = 'import json,sys; print(json.dumps({"order_id": "o", "items": [], "address": "x" * int(sys.argv[1])}))'
    server.check_output(f"python3 -c '{order}' 1000000 > /root/big.json && python3 -c '{order}' 3000000 > /root/huge.json")
    common = "--type OrderWorkflow --task-queue orders"
    started = server.run(cli(f"workflow start {common} --workflow-id {big_field} --input-file /root/big.json"))
    assert started.rc == 0, started.stderr
    assert_failed_cleanly(server, big_field, "address: at most 1000 characters")
    refused = server.run(cli(f"workflow start {common} --workflow-id {too_big} --input-file /root/huge.json"))
    assert refused.rc != 0
    assert "size exceeds limit" in refused.stdout + refused.stderr
    assert server.run(cli(f"workflow describe --workflow-id {too_big}")).rc != 0
