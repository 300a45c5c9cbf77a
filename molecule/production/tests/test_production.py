"""Verifies the production path: PostgreSQL on "pg", the server role on "temporal".

The temporal-server release cannot be downloaded on these machines. Without TEMPORAL_SERVER_ARCHIVE the
converge runs the server role's config-only entry point, and every test that needs the running server
says so with pytest.skip.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import yaml
from conftest import assert_check_mode_changes_nothing, converge_password, instance, run_playbook, scenario_dir

USER = "temporal"
DATABASES = ("temporal", "temporal_visibility")
CONFIG = "/etc/temporal/config.yaml"
PASSWORD_FILE = "/etc/temporal/db-password"
CHECK = "/usr/local/libexec/durable-temporal/temporal-config-check"
ADDRESS = "127.0.0.1:7233"
NO_ARCHIVE = "no temporal-server release archive supplied (set TEMPORAL_SERVER_ARCHIVE)"
HAVE_ARCHIVE = bool(os.environ.get("TEMPORAL_SERVER_ARCHIVE"))
needs_archive = pytest.mark.skipif(not HAVE_ARCHIVE, reason=NO_ARCHIVE)


@pytest.fixture(scope="module")
def pg():
    return instance("pg")


@pytest.fixture(scope="module")
def temporal():
    return instance("temporal")


def psql(temporal, sql: str, *, dbname: str = "temporal"):
    """psql from the Temporal host over the network, as the Temporal role; the password goes in the environment."""
    conninfo = f"host=pg user={USER} dbname={dbname} connect_timeout=10"
    return temporal.run("PGPASSWORD=%s psql %s -AtX -v ON_ERROR_STOP=1 -c %s", converge_password(), conninfo, sql)


def cli(temporal, *args: str):
    return temporal.run("temporal " + " ".join(args) + f" --address {ADDRESS}")


def test_check_mode_on_the_converged_hosts_changes_nothing(check_mode_run):
    assert_check_mode_changes_nothing(check_mode_run)


def test_both_databases_exist_on_pg(pg):
    names = pg.check_output("runuser -u postgres -- psql -AtX -c %s", "SELECT datname FROM pg_database ORDER BY 1").split()
    assert set(DATABASES) <= set(names), names


def test_the_temporal_role_logs_in_over_the_network(temporal):
    for dbname in DATABASES:
        result = psql(temporal, "SELECT current_user, current_database()", dbname=dbname)
        assert result.rc == 0, result.stderr
        assert result.stdout.strip() == f"{USER}|{dbname}"


def test_the_temporal_role_cannot_create_databases(temporal):
    result = psql(temporal, "CREATE DATABASE must_not_exist")
    assert result.rc != 0
    assert "permission denied" in result.stderr


def test_config_belongs_to_root_and_the_service_group(temporal):
    config = temporal.file(CONFIG)
    assert config.exists
    assert (config.user, config.group, config.mode) == ("root", "temporal", 0o640)
    directory = temporal.file("/etc/temporal")
    assert (directory.user, directory.group, directory.mode) == ("root", "temporal", 0o750)


def test_config_passes_the_validator_on_the_host(temporal):
    result = temporal.run("/usr/bin/python3 %s %s", CHECK, CONFIG)
    assert (result.rc, result.stdout, result.stderr) == (0, "", "")


def test_config_reads_the_password_from_its_file_and_holds_no_password(temporal):
    text = temporal.check_output("cat %s", CONFIG)
    assert converge_password() not in text
    config = yaml.safe_load(text)
    for store in ("default", "visibility"):
        sql = config["persistence"]["datastores"][store]["sql"]
        assert "password" not in sql
        assert sql["passwordCommand"] == {"command": "/usr/bin/cat", "args": [PASSWORD_FILE]}
        assert sql["connectAddr"] == "pg:5432"
    assert config["persistence"]["numHistoryShards"] == 4


def test_the_password_file_is_readable_by_the_service_group_only(temporal):
    secret = temporal.file(PASSWORD_FILE)
    assert (secret.user, secret.group, secret.mode) == ("root", "temporal", 0o640)
    assert temporal.check_output("cat %s", PASSWORD_FILE) == converge_password()
    # The service user reads it the way the server does (passwordCommand), and it logs in with it.
    assert temporal.run("runuser -u temporal -- /usr/bin/cat %s", PASSWORD_FILE).stdout == converge_password()


def test_the_dynamic_config_is_written(temporal):
    dynamic = yaml.safe_load(temporal.check_output("cat /etc/temporal/dynamic_config.yaml"))
    assert dynamic["limit.maxIDLength"] == [{"value": 255, "constraints": {}}]


def test_the_password_is_not_in_the_ansible_output():
    run = run_playbook(scenario_dir() / "converge.yml", "--diff")
    assert run.returncode == 0, run.output[-3000:]
    assert converge_password() not in run.output


def test_without_an_archive_the_units_wait_for_the_binary(temporal):
    if HAVE_ARCHIVE:
        pytest.skip("an archive was supplied: the units are written and checked below")
    assert not temporal.file("/etc/systemd/system/temporal-server.service").exists
    assert not temporal.file("/usr/local/bin/temporal-server").exists


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("temporal_server_num_history_shards", "0", "temporal_server_num_history_shards"),
        ("temporal_server_broadcast_address", "temporal.example.internal", "temporal_server_broadcast_address"),
        ("temporal_server_db_password_file", "/etc/temporal/other-password", "temporal_server_db_password_file"),
    ],
)
def test_bad_server_variables_stop_the_play_before_any_change(temporal, variable, value, named):
    """Both the config-only entry point and the main one check first; the marker directory must not appear."""
    run = run_playbook(
        scenario_dir() / "converge.yml",
        "--limit", "temporal",
        extra_vars={variable: value, "temporal_server_config_dir": "/etc/must-not-exist", "temporal_server_data_dir": "/var/lib/must-not-exist"},
    )
    assert run.returncode != 0, f"{variable}={value} was accepted"
    assert named in run.output, f"the error for {variable}={value} does not name it:\n{run.output[-3000:]}"
    assert not temporal.file("/etc/must-not-exist").exists, f"{variable}={value}: the play changed the host before failing"
    assert not temporal.file("/var/lib/must-not-exist").exists


def test_without_an_archive_the_install_stops_at_the_fetch_before_any_change(temporal):
    if HAVE_ARCHIVE:
        pytest.skip("an archive was supplied: the install runs for real")
    run = run_playbook(
        scenario_dir() / "install.yml",
        extra_vars={"temporal_server_config_dir": "/etc/must-not-exist", "temporal_server_data_dir": "/var/lib/must-not-exist",
                    "temporal_server_install_dir": "/opt/must-not-exist"},
    )
    assert run.returncode != 0, run.output[-3000:]
    assert "No temporal-server 1.32.0 release archive" in run.output, run.output[-3000:]
    assert "temporal_server_local_artifact" in run.output
    for path in ("/etc/must-not-exist", "/var/lib/must-not-exist", "/opt/must-not-exist"):
        assert not temporal.file(path).exists, f"{path}: the play changed the host before failing"
    assert converge_password() not in run.output


# --- With a release archive only ------------------------------------------------------------------


def wait_serving(temporal, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "SERVING" in cli(temporal, "operator cluster health").stdout:
            return
        time.sleep(2)
    pytest.fail("the frontend did not answer SERVING in time")


@needs_archive
def test_the_unit_verifies_and_the_server_runs_as_its_user(temporal):
    verify = temporal.run("systemd-analyze verify /etc/systemd/system/temporal-server.service")
    assert verify.rc == 0, verify.stderr
    service = temporal.service("temporal-server")
    assert service.is_enabled and service.is_running
    pid = temporal.check_output("systemctl show -p MainPID --value temporal-server")
    assert temporal.check_output("ps -o user= -p %s", pid) == "temporal"


@needs_archive
def test_the_server_serves(temporal):
    wait_serving(temporal)


@needs_archive
def test_the_schemas_are_current(temporal):
    for dbname in DATABASES:
        result = psql(temporal, "SELECT curr_version FROM schema_version", dbname=dbname)
        assert result.rc == 0, result.stderr
        assert result.stdout.strip() and result.stdout.strip() != "0.0", f"{dbname}: schema version {result.stdout!r}"


@needs_archive
def test_the_default_namespace_exists_with_its_retention(temporal):
    result = cli(temporal, "operator namespace describe --namespace default -o json")
    assert result.rc == 0, result.stderr
    retention = json.loads(result.stdout)["config"]["workflowExecutionRetentionTtl"]
    assert retention in ("259200s", "72h0m0s", "259200.000s"), retention


@needs_archive
def test_a_workflow_runs_through_the_bundled_worker(temporal):
    workflow_id = f"prod-order-{uuid.uuid4().hex[:8]}"
    order = {"order_id": workflow_id, "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}],
             "address": "1 Main St", "email": "a@example.com"}
    result = temporal.run(
        f"temporal workflow execute --type OrderWorkflow --task-queue orders --workflow-id {workflow_id} "
        f"--input '{json.dumps(order)}' --address {ADDRESS} -o json"
    )
    assert result.rc == 0, result.stdout + result.stderr
    described = json.loads(cli(temporal, f"workflow describe --workflow-id {workflow_id} -o json").stdout)
    assert described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"


@pytest.mark.skipif(not (HAVE_ARCHIVE and os.environ.get("TEMPORAL_UI_ARCHIVE")), reason=NO_ARCHIVE + " or no TEMPORAL_UI_ARCHIVE")
def test_the_ui_answers(temporal):
    assert temporal.run("curl -fsS -o /dev/null http://127.0.0.1:8080/").rc == 0
