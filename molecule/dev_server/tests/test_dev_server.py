"""Verifies the dev_server role on a real systemd host, with the real Temporal CLI."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from conftest import assert_check_mode_changes_nothing, run_playbook, scenario_dir

ADDRESS = "127.0.0.1:7233"
SERVICE = "temporal-dev-server"
DATA_DIR = "/var/lib/temporal-dev"
DB = f"{DATA_DIR}/temporal.db"


def temporal(host, *args: str):
    return host.run("temporal " + " ".join(args) + f" --address {ADDRESS}")


def wait_serving(host, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "SERVING" in temporal(host, "operator cluster health").stdout:
            return
        time.sleep(1)
    pytest.fail("the dev server frontend did not answer SERVING in time")


def test_check_mode_on_the_converged_host_changes_nothing(check_mode_run):
    assert_check_mode_changes_nothing(check_mode_run)


def test_service_is_enabled_and_running(host):
    service = host.service(SERVICE)
    assert service.is_enabled
    assert service.is_running


def test_service_runs_as_its_own_nologin_user(host):
    user = host.user("temporal")
    assert user.shell == "/usr/sbin/nologin"
    assert user.group == "temporal"
    pid = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    assert host.check_output(f"ps -o user= -p {pid}") == "temporal"


@pytest.mark.parametrize("port", [7233, 7243, 8233, 9233])
def test_pinned_ports_listen(host, port):
    assert host.socket(f"tcp://0.0.0.0:{port}").is_listening


def test_cluster_answers_health_check(host):
    result = temporal(host, "operator cluster health")
    assert result.rc == 0, result.stderr
    assert "SERVING" in result.stdout


def test_namespaces_include_default_and_configured_ones(host):
    result = temporal(host, "operator namespace list -o json")
    assert result.rc == 0, result.stderr
    names = {ns["namespaceInfo"]["name"] for ns in json.loads(result.stdout)}
    assert {"default", "orders-test"} <= names


def test_search_attribute_is_registered(host):
    result = temporal(host, "operator search-attribute list -o json")
    assert result.rc == 0, result.stderr
    assert "CustomerId" in result.stdout


def test_metrics_port_serves_prometheus_text(host):
    body = host.check_output("curl -fsS http://127.0.0.1:9233/metrics")
    type_lines = [line for line in body.splitlines() if line.startswith("# TYPE ")]
    assert len(type_lines) > 50, body[:500]
    assert any(line.startswith("persistence_requests") for line in body.splitlines())


def test_data_directory_and_file_belong_to_the_service(host):
    directory = host.file(DATA_DIR)
    assert directory.user == "temporal" and directory.mode == 0o750
    db = host.file(DB)
    assert db.exists and db.user == "temporal"
    assert db.mode & 0o007 == 0, "the SQLite file must not be world-readable"


def test_the_sqlite_file_has_wal_and_2k_pages_and_the_server_got_the_pragmas(host):
    # WAL and the page size are recorded in the file's header (bytes 16-19: page size, then
    # write and read format versions, 2 = WAL). The page size only takes when it reaches SQLite
    # before journal_mode=wal; synchronous and the checkpoint are per connection, so the
    # process's arguments show them.
    assert host.file(DB + "-wal").exists
    header = bytes(int(b) for b in host.check_output(f"head -c 20 {DB} | od -An -tu1").split())
    assert int.from_bytes(header[16:18], "big") == 2048, header
    assert header[18:20] == bytes([2, 2]), header
    pid = host.check_output("systemctl show -p MainPID --value temporal-dev-server")
    arguments = host.file(f"/proc/{pid}/cmdline").content.split(b"\0")
    for pragma in (b"journal_mode=wal", b"synchronous=normal", b"wal_autocheckpoint=16000"):
        assert b"--sqlite-pragma=" + pragma in arguments, arguments


def test_unit_is_hardened_and_verifies(host):
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            f"systemctl show -p User -p NoNewPrivileges -p ProtectSystem -p ProtectHome -p PrivateTmp -p CapabilityBoundingSet {SERVICE}"
        ).splitlines()
    )
    assert props["User"] == "temporal"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ProtectSystem"] == "strict"
    assert props["ProtectHome"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert props["CapabilityBoundingSet"] == ""
    verify = host.run(f"systemd-analyze verify /etc/systemd/system/{SERVICE}.service")
    assert verify.rc == 0, verify.stderr


def test_the_cli_on_the_controller_reaches_the_server(host):
    ip = host.check_output("hostname -I").split()[0]
    result = subprocess.run(
        ["temporal", "operator", "cluster", "health", "--address", f"{ip}:7233"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "SERVING" in result.stdout


def start_idle_workflow(host) -> str:
    """A workflow nobody serves stays Running: enough to prove the history persists."""
    workflow_id = f"persist-{uuid.uuid4()}"
    result = temporal(host, f"workflow start --type Persisted --task-queue nobody --workflow-id {workflow_id}")
    assert result.rc == 0, result.stderr
    return workflow_id


def describe(host, workflow_id: str) -> dict:
    result = temporal(host, f"workflow describe --workflow-id {workflow_id} -o json")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def persisted_workflow(host) -> str:
    return start_idle_workflow(host)


def test_workflow_survives_a_service_restart(host, persisted_workflow):
    before = host.check_output(f"systemctl show -p MainPID --value {SERVICE}")
    host.check_output(f"systemctl restart {SERVICE}")
    assert host.check_output(f"systemctl show -p MainPID --value {SERVICE}") != before
    wait_serving(host)
    info = describe(host, persisted_workflow)
    assert info["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"


def test_bad_variables_stop_the_play_before_any_change(host):
    cases = {
        "temporal_dev_server_port": ("70000", "temporal_dev_server_port"),
        "temporal_cli_install_method": ("carrier-pigeon", "temporal_cli_install_method"),
        "temporal_dev_server_metrics_port": ("not-a-port", "temporal_dev_server_metrics_port"),
        # SQLite would ignore it without a word.
        "temporal_dev_server_sqlite_pragmas": ({"journal_mode": "wal", "page_size": 3000}, "page_size"),
    }
    for variable, (value, named) in cases.items():
        run = run_playbook(
            scenario_dir() / "converge.yml",
            extra_vars={variable: value, "temporal_dev_server_data_dir": "/var/lib/must-not-exist"},
        )
        assert run.returncode != 0, f"{variable}={value} was accepted"
        assert named in run.output, f"the error for {variable}={value} does not name it:\n{run.output[-3000:]}"
        assert not host.file("/var/lib/must-not-exist").exists, f"{variable}={value}: the play changed the host before failing"


def test_absent_removes_service_and_unit_and_keeps_the_data(host, persisted_workflow):
    run = run_playbook(scenario_dir() / "remove.yml")
    assert run.returncode == 0, run.output[-4000:]
    assert not host.file(f"/etc/systemd/system/{SERVICE}.service").exists
    assert host.run(f"systemctl cat {SERVICE}").rc != 0
    assert not host.socket("tcp://0.0.0.0:7233").is_listening
    assert host.file(DB).exists, "absent must keep the SQLite file"

    again = run_playbook(scenario_dir() / "remove.yml")
    assert again.returncode == 0 and all(c["changed"] == 0 for c in again.recap().values()), again.output[-3000:]

    restored = run_playbook(scenario_dir() / "converge.yml")
    assert restored.returncode == 0, restored.output[-4000:]
    wait_serving(host)
    assert describe(host, persisted_workflow)["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"


def test_absent_with_purge_deletes_the_data_and_user(host):
    run = run_playbook(scenario_dir() / "remove.yml", extra_vars={"purge": True})
    assert run.returncode == 0, run.output[-4000:]
    assert not host.file(DATA_DIR).exists
    assert not host.user("temporal").exists
    # Leave the host converged for whatever runs after the verifier.
    assert run_playbook(scenario_dir() / "converge.yml").returncode == 0
