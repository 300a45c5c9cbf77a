"""Verifies the production stack that the preset deploys on one host with only temporal_mode set."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from conftest import (
    assert_check_mode_changes_nothing,
    assert_injected_failures_are_refused,
    execute_an_order,
    run_json,
    run_playbook,
    scenario_dir,
    wait_for,
)

WORKERS_CLI = "/opt/temporal-workers/venv/bin/temporal-workers"
CLIENT_ENV = "set -a; . /etc/temporal/client.env; set +a;"
QUEUES = ["orders", "sagas", "stateful-machines", "loyalty"]
SERVICES = {"postgresql@15-main": "postgres", "temporal-server": "temporal", "temporal-ui": "temporal-ui", "prometheus": "prometheus"} | {
    f"temporal-worker@{q}": "temporal-worker" for q in QUEUES
}
# The preset's own default (temporal_stack_secrets_dir): the password it made for the database role.
SECRET = Path(os.path.expanduser("~/.local/share/durable.temporal/secrets/postgresql-temporal"))


def db(host, database: str, sql: str) -> str:
    return host.check_output(f"runuser -u postgres -- psql -d {database} -AtX -c %s", sql)


@pytest.fixture(scope="module")
def completed_order(host) -> str:
    return execute_an_order(host, lambda args: f"{CLIENT_ENV} temporal {args}", "stack-order")


def test_check_mode_on_the_converged_host_changes_nothing(check_mode_run):
    assert_check_mode_changes_nothing(check_mode_run)


@pytest.mark.parametrize(("service", "user"), SERVICES.items())
def test_every_service_is_active_and_runs_as_its_own_user(host, service, user):
    assert host.service(service).is_running, service
    pid = host.check_output(f"systemctl show -p MainPID --value {service}")
    assert host.check_output("ps -o user= -p %s", pid) == user


def test_an_order_completes_on_postgresql_over_mtls(host, completed_order):
    described = run_json(host, f"{CLIENT_ENV} temporal workflow describe --workflow-id {completed_order} -o json")
    assert described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    assert db(host, "temporal_visibility", f"SELECT status FROM executions_visibility WHERE workflow_id = '{completed_order}'") == "2"


def test_prometheus_sees_every_target_up(host):
    def targets():
        data = run_json(host, "curl -fsS http://127.0.0.1:9090/api/v1/targets")["data"]["activeTargets"]
        return data if data and all(t["health"] == "up" for t in data) else None

    up = wait_for(targets, 90, "every Prometheus target up")
    assert sorted(t["labels"]["job"] for t in up).count("temporal-server") == 1
    assert sorted(t["labels"]["job"] for t in up).count("temporal-workers") == len(QUEUES)


def test_fault_injection_is_off_by_default(host):
    assert_injected_failures_are_refused(host, WORKERS_CLI)


def test_the_database_password_was_made_on_the_controller_and_stays_out_of_sight(host):
    assert SECRET.stat().st_mode & 0o777 == 0o600
    password = SECRET.read_text().strip()
    assert len(password) == 32
    assert password not in host.check_output("cat /etc/temporal/config.yaml")
    assert host.check_output("cat /etc/temporal/db-password") == password
    run = run_playbook(scenario_dir() / "converge.yml", "--check", "--diff")
    assert run.returncode == 0 and password not in run.output


def test_changed_secrets_reach_neither_diff_nor_verbose_output(host):
    """A converge with --diff -vvv that changes the database password (PostgreSQL's role and the server's file)
    and a secret in the workers' environment: their tasks report changes, the output holds neither value."""
    old = SECRET.read_text().strip()
    new = f"dt-{uuid.uuid4().hex}"
    env_secret = f"dt-env-{uuid.uuid4().hex}"
    run = run_playbook(
        scenario_dir() / "converge.yml",
        "--diff",
        "-vvv",
        extra_vars={"temporal_postgresql_password": new, "temporal_worker_environment": {"DT_SECRET": env_secret}},
    )
    try:
        assert run.returncode == 0, run.output[-4000:]
        assert host.check_output("cat /etc/temporal/db-password") == new
        for task in ("Write the workers' environment]",):
            assert "changed:" in run.output.split(task, 1)[1].split("TASK [", 1)[0], task
        assert run.recap()["instance"]["changed"] >= 3, run.changed_tasks()
        for secret in (new, old, env_secret):
            assert secret not in run.output, "a secret is in the converge output"
    finally:
        restored = run_playbook(scenario_dir() / "converge.yml")
        assert restored.returncode == 0, restored.output[-4000:]
    assert host.check_output("cat /etc/temporal/db-password") == old
    wait_for(lambda: "SERVING" in host.run(f"{CLIENT_ENV} temporal operator cluster health").stdout, 60, "the server on the restored password")


def test_absent_keeps_both_databases_and_their_data(host, completed_order):
    removed = run_playbook(scenario_dir() / "remove.yml")
    assert removed.returncode == 0, removed.output[-4000:]
    for service in SERVICES:
        if service != "postgresql@15-main":
            assert not host.service(service).is_running, f"{service} still runs"
    assert not host.file("/etc/systemd/system/temporal-server.service").exists
    assert db(host, "temporal", f"SELECT count(*) FROM executions WHERE workflow_id = '{completed_order}'") == "1"
    assert db(host, "temporal_visibility", f"SELECT count(*) FROM executions_visibility WHERE workflow_id = '{completed_order}'") == "1"
