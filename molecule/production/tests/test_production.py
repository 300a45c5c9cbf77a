"""Verifies the production path: PostgreSQL on "pg"; temporal-server, the bundled workers, the UI and
Prometheus on "temporal", with mutual TLS from the private CA; the binaries are the release archives
the harness built from the Go modules at the versions the roles pin.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from conftest import (
    assert_a_failed_transfer_is_compensated,
    assert_check_mode_changes_nothing,
    assert_the_machine_operator_follows_signals,
    assert_the_web_ui_lists,
    converge_password,
    execute_an_order,
    instance,
    run_json,
    run_playbook,
    scenario_dir,
    wait_for,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[3]))
PKI = REPO / ".cache" / "pki" / "production"  # temporal_tls_pki_dir in molecule.yml
USER = "temporal"
DATABASES = {"temporal": "temporal", "temporal_visibility": "visibility"}
CONFIG = "/etc/temporal/config.yaml"
PASSWORD_FILE = "/etc/temporal/db-password"
CHECK = "/usr/local/libexec/durable-temporal/temporal-config-check"
# What root on the host sources to reach the frontend with the temporal CLI and tdbg (the role writes it).
CLIENT_ENV = "set -a; . /etc/temporal/client.env; set +a;"
WORKERS_CLI = "/opt/temporal-workers/venv/bin/temporal-workers"
SERVICES = ["temporal-server", "temporal-ui", "temporal-worker@orders", "temporal-worker@sagas",
            "temporal-worker@stateful-machines", "temporal-worker@loyalty", "prometheus"]  # fmt: skip
SERVER_VERSION = yaml.safe_load((REPO / "roles/server/defaults/main.yml").read_text())["temporal_server_version"]
UI_VERSION = yaml.safe_load((REPO / "roles/ui/defaults/main.yml").read_text())["temporal_ui_version"]


@pytest.fixture(scope="module")
def pg():
    return instance("pg")


@pytest.fixture(scope="module")
def temporal():
    return instance("temporal")


@pytest.fixture(scope="module")
def ip(temporal) -> str:
    return temporal.check_output("hostname -I").split()[0]


def cli(args: str) -> str:
    return f"{CLIENT_ENV} temporal {args}"


def psql(temporal, sql: str, *, dbname: str = "temporal"):
    """psql from the Temporal host over the network, as the Temporal role; the password goes in the environment."""
    conninfo = f"host=pg user={USER} dbname={dbname} connect_timeout=10"
    return temporal.run("PGPASSWORD=%s psql %s -AtX -v ON_ERROR_STOP=1 -c %s", converge_password(), conninfo, sql)


@pytest.fixture(scope="module")
def completed_order(temporal) -> str:
    """An OrderWorkflow started with the real temporal CLI over mTLS, served by the deployed worker."""
    return execute_an_order(temporal, cli, "prod-order")


def controller_cli(ip: str, *args: str) -> subprocess.CompletedProcess:
    """The temporal CLI of the test venv on the controller, against the frontend over the network."""
    return subprocess.run(["temporal", "operator", "cluster", "health", "--address", f"{ip}:7233", *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def pids(host) -> dict[str, str]:
    return {service: host.check_output(f"systemctl show -p MainPID --value {service}") for service in SERVICES}


# --- The deployment ----------------------------------------------------------------------------


def test_check_mode_on_the_converged_hosts_changes_nothing(check_mode_run):
    assert_check_mode_changes_nothing(check_mode_run)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("/usr/local/bin/temporal-server --version", f"temporal version {SERVER_VERSION}"),
        ("/usr/local/bin/temporal-sql-tool --version", f"temporal-sql-tool version {SERVER_VERSION}"),
        ("/usr/local/bin/tdbg --version", f"tdbg version {SERVER_VERSION}"),
        (f"/opt/temporal-ui/{UI_VERSION}/ui-server --version", f"Temporal UI version {UI_VERSION}"),
    ],
)
def test_each_binary_reports_the_pinned_version(temporal, command, expected):
    assert temporal.check_output(command).strip() == expected


def test_the_binaries_are_the_static_builds_from_the_harness_archives(temporal):
    for path in ("/usr/local/bin/temporal-server", f"/opt/temporal-ui/{UI_VERSION}/ui-server"):
        # No program interpreter: statically linked (CGO_ENABLED=0), as the releases are.
        assert "INTERP" not in temporal.check_output(f"readelf -l {path} 2>&1 || true"), path
    for archive, checksums in (
        (f"temporal/v{SERVER_VERSION}/temporal_{SERVER_VERSION}_linux_amd64.tar.gz", f"temporal/v{SERVER_VERSION}/checksums.txt"),
        (f"ui-server/v{UI_VERSION}/ui-server_{UI_VERSION}_linux_amd64.tar.gz", f"ui-server/v{UI_VERSION}/ui-server_{UI_VERSION}_checksums.txt"),
    ):
        path = REPO / ".cache" / "releases" / archive
        listed = (REPO / ".cache" / "releases" / checksums).read_text().split()
        check = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout.split()[0]
        assert listed == [check, path.name], f"{checksums} does not list {path.name} with its sha256"


@pytest.mark.parametrize("unit", ["temporal-server", "temporal-ui"])
def test_the_units_verify_and_are_hardened(temporal, unit):
    verify = temporal.run(f"systemd-analyze verify /etc/systemd/system/{unit}.service")
    assert verify.rc == 0, verify.stderr
    exposure = temporal.check_output(f"systemd-analyze security {unit}.service | tail -n 1")
    assert float(exposure.split(":")[1].split()[0]) <= 2.0, exposure


@pytest.mark.parametrize(("unit", "user"), [("temporal-server", "temporal"), ("temporal-ui", "temporal-ui")])
def test_the_services_run_as_their_nologin_users(temporal, unit, user):
    service = temporal.service(unit)
    assert service.is_enabled and service.is_running
    pid = temporal.check_output(f"systemctl show -p MainPID --value {unit}")
    assert temporal.check_output("ps -o user= -p %s", pid) == user
    assert temporal.user(user).shell in ("/usr/sbin/nologin", "/bin/false")


def test_the_server_the_ui_and_the_metrics_listen_on_the_host_address_only(temporal, ip):
    listening = temporal.check_output("ss -ltnpH")
    for port in (7233, 7234, 7235, 7239, 7243, 6933, 9233, 8080):
        lines = [line for line in listening.splitlines() if line.split()[3].rsplit(":", 1)[1] == str(port)]
        assert [line.split()[3] for line in lines] == [f"{ip}:{port}"], lines


def test_the_server_serves_on_postgresql(temporal):
    health = temporal.run(cli("operator cluster health"))
    assert health.rc == 0 and "SERVING" in health.stdout, health.stdout + health.stderr
    config = yaml.safe_load(temporal.check_output("cat %s", CONFIG))
    assert {store["sql"]["pluginName"] for store in config["persistence"]["datastores"].values()} == {"postgres12"}
    # The server's own connections, seen from PostgreSQL's side.
    sessions = instance("pg").check_output(
        "runuser -u postgres -- psql -AtX -c %s", "SELECT count(*) FROM pg_stat_activity WHERE usename = 'temporal'"
    )
    assert int(sessions) > 0


def test_every_connection_to_postgresql_uses_tls_and_plain_ones_are_refused(pg, temporal):
    """The database's certificate comes from the private CA; the server and the schema tool verify it (verify-full)."""
    config = yaml.safe_load(temporal.check_output("cat %s", CONFIG))
    tls = config["persistence"]["datastores"]["default"]["sql"]["tls"]
    assert (tls["enabled"], tls["enableHostVerification"], tls["caFile"], tls["serverName"]) == (True, True, "/etc/temporal/tls/ca.pem", "pg")
    ssl = pg.check_output(
        "runuser -u postgres -- psql -AtX -c %s",
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'temporal'",
    )
    total, encrypted = (int(n) for n in ssl.split("|"))
    assert total > 0 and encrypted == total, ssl
    verified = temporal.run(
        "PGPASSWORD=%s psql %s -AtX -c 'SELECT 1'", converge_password(),
        f"host=pg user={USER} dbname=temporal sslmode=verify-full sslrootcert=/etc/temporal/tls/ca.pem connect_timeout=10",
    )  # fmt: skip
    assert verified.rc == 0, verified.stderr
    plain = temporal.run("PGPASSWORD=%s psql %s -AtX -c 'SELECT 1'", converge_password(), f"host=pg user={USER} dbname=temporal sslmode=disable")
    assert plain.rc != 0 and "no encryption" in plain.stderr, plain.stderr


def test_the_schemas_are_the_ones_the_sql_tool_carries(temporal):
    """Both databases' version tables hold the newest schema version of the server module at the pinned tag."""
    module = subprocess.run(["go", "env", "GOMODCACHE"], capture_output=True, text=True, check=True).stdout.strip()
    schemas = Path(module) / f"go.temporal.io/server@v{SERVER_VERSION}/schema/postgresql/v12"
    for dbname, schema in DATABASES.items():
        newest = max(tuple(int(p) for p in d.name[1:].split(".")) for d in (schemas / schema / "versioned").iterdir())
        result = psql(temporal, "SELECT curr_version FROM schema_version", dbname=dbname)
        assert result.rc == 0, result.stderr
        assert tuple(int(p) for p in result.stdout.strip().split(".")) == newest, f"{dbname}: {result.stdout!r}, newest {newest}"


def test_a_changed_password_reaches_neither_diff_nor_verbose_output(temporal):
    """A converge with --diff -vvv that changes the database password (PostgreSQL's role and the server's file):
    their tasks report changes, the output holds neither the old nor the new value. Then a converge with --diff puts
    the old one back: it shows no password either, and runs the schema step without changing the schemas."""
    old, new = converge_password(), f"dt-{uuid.uuid4().hex}"
    run = run_playbook(scenario_dir() / "converge.yml", "--diff", "-vvv",
                       extra_vars={"temporal_postgresql_password": new, "temporal_server_db_password": new})  # fmt: skip
    try:
        assert run.returncode == 0, run.output[-4000:]
        assert temporal.check_output(f"cat {PASSWORD_FILE}") == new
        assert run.recap()["temporal"]["changed"] >= 1 and run.recap()["pg"]["changed"] >= 1, run.changed_tasks()
        assert new not in run.output and old not in run.output, "a password is in the converge output"
    finally:
        restored = run_playbook(scenario_dir() / "converge.yml", "--diff")
        assert restored.returncode == 0, restored.output[-4000:]
    assert temporal.check_output(f"cat {PASSWORD_FILE}") == old
    assert new not in restored.output and old not in restored.output, "a password is in the output of the restoring converge"
    assert not [task for task in restored.changed_tasks() if "schema" in task.lower()], restored.changed_tasks()
    for task in ("Set up the schema version tables where there are none", "Update the schemas to the ones this version"):
        assert task in restored.output, f"{task!r} did not run"
    wait_for(lambda: temporal.run(cli("operator cluster health")).rc == 0, 60, "the server on the restored password")


@pytest.mark.parametrize(("namespace", "retention"), [("default", "72h"), ("billing", "24h")])
def test_the_namespaces_exist_with_their_retention(temporal, namespace, retention):
    described = run_json(temporal, cli(f"operator namespace describe --namespace {namespace} -o json"))
    ttl = described["config"]["workflowExecutionRetentionTtl"]
    assert ttl in (f"{int(retention[:-1]) * 3600}s", f"{retention}0m0s"), ttl


# --- Workflows through the bundled workers ---------------------------------------------------------


def test_an_order_completes_through_the_bundled_worker(temporal, completed_order):
    described = run_json(temporal, cli(f"workflow describe --workflow-id {completed_order} -o json"))
    assert described["workflowExecutionInfo"]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    result = run_json(temporal, f"{WORKERS_CLI} result --id {completed_order}")
    assert "tracking" in json.dumps(result).lower()


def test_a_failed_transfer_is_compensated(temporal):
    assert_a_failed_transfer_is_compensated(temporal, WORKERS_CLI)


def test_the_machine_operator_follows_signals_and_queries_sent_with_the_cli(temporal):
    assert_the_machine_operator_follows_signals(temporal, cli)


# --- The UI, metrics and tdbg ----------------------------------------------------------------------


def test_the_ui_answers_over_https_with_the_private_ca(temporal, ip):
    assert temporal.run(f"curl -fsS -o /dev/null --cacert /etc/temporal-ui/tls/ca.pem https://{ip}:8080/healthz").rc == 0
    assert temporal.run(f"curl -fsS -o /dev/null http://{ip}:8080/healthz").rc != 0, "the UI also answers plain HTTP"


def test_the_ui_lists_the_completed_order(ip, completed_order):
    # The browser does not know the private CA; curl above checked the certificate against it.
    url = f"https://{ip}:8080/namespaces/default/workflows"
    assert_the_web_ui_lists(url, completed_order, "production-ui-workflows.png", "--ignore-certificate-errors")


def test_prometheus_scrapes_the_servers_own_metrics(temporal, ip):
    def server_target():
        targets = run_json(temporal, "curl -fsS http://127.0.0.1:9090/api/v1/targets")["data"]["activeTargets"]
        up = [t for t in targets if t["labels"]["job"] == "temporal-server" and t["health"] == "up"]
        return up or None

    (target,) = wait_for(server_target, 90, "the temporal-server target up")
    assert target["scrapeUrl"] == f"http://{ip}:9233/metrics"
    query = run_json(temporal, "curl -fsS http://127.0.0.1:9090/api/v1/query --data-urlencode 'query=sum(service_requests{job=\"temporal-server\"})'")
    assert float(query["data"]["result"][0]["value"][1]) > 0


def test_tdbg_reaches_the_cluster_with_the_host_certificate(temporal, ip):
    gossip = run_json(temporal, f"{CLIENT_ENV} tdbg membership list-gossip")
    roles = {entry["role"]: [m["identity"] for m in entry["members"]] for entry in gossip}
    assert roles["history"] == [f"{ip}:7234"], roles
    assert set(roles) == {"frontend", "history", "matching", "worker"}


# --- Mutual TLS ----------------------------------------------------------------------------------


def test_a_client_without_a_certificate_is_refused(ip):
    plain = controller_cli(ip)
    assert plain.returncode != 0 and "requires TLS" in plain.stdout + plain.stderr, plain.stdout + plain.stderr
    no_cert = controller_cli(ip, "--tls-ca-path", str(PKI / "ca.pem"))
    assert no_cert.returncode != 0 and "client certificate" in no_cert.stdout + no_cert.stderr, no_cert.stdout + no_cert.stderr


def test_a_client_with_a_certificate_of_another_ca_is_refused(ip, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intruder")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))  # fmt: skip
    (tmp_path / "other.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "other.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    refused = controller_cli(ip, "--tls-ca-path", str(PKI / "ca.pem"), "--tls-cert-path", str(tmp_path / "other.pem"),
                             "--tls-key-path", str(tmp_path / "other.key"))  # fmt: skip
    assert refused.returncode != 0, refused.stdout


def test_a_client_with_a_certificate_of_the_private_ca_gets_in(ip):
    accepted = controller_cli(ip, "--tls-ca-path", str(PKI / "ca.pem"), "--tls-cert-path", str(PKI / "client.pem"),
                              "--tls-key-path", str(PKI / "client.key"))  # fmt: skip
    assert accepted.returncode == 0 and "SERVING" in accepted.stdout, accepted.stdout + accepted.stderr


@pytest.mark.parametrize(
    ("directory", "name", "group"),
    [("/etc/temporal/tls", "server", "temporal"), ("/etc/temporal-ui/tls", "ui", "temporal-ui"),
     ("/etc/temporal-workers/tls", "worker", "temporal-worker")],
)  # fmt: skip
def test_the_keys_are_readable_by_their_service_group_only(temporal, directory, name, group):
    key = temporal.file(f"{directory}/{name}.key")
    assert (key.user, key.group, key.mode) == ("root", group, 0o640)
    assert temporal.file(directory).mode == 0o750


def test_the_cas_key_stays_on_the_controller(temporal):
    keys = temporal.check_output("grep -rl 'PRIVATE KEY' /etc/temporal /etc/temporal-ui /etc/temporal-workers").split()
    assert sorted(keys) == ["/etc/temporal-ui/tls/ui.key", "/etc/temporal-workers/tls/worker.key", "/etc/temporal/tls/server.key"]
    assert (PKI / "ca.key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    ("certificate", "restarted"),
    [("/etc/temporal/tls/server.pem", {"temporal-server"}), ("/etc/temporal-ui/tls/ui.pem", {"temporal-ui"})],
)
def test_a_replaced_certificate_restarts_its_service_and_nothing_else(temporal, certificate, restarted):
    before = pids(temporal)
    old = temporal.check_output(f"openssl x509 -noout -serial -in {certificate}")
    temporal.run_expect([0], f"rm {certificate}")
    run = run_playbook(scenario_dir() / "converge.yml")
    assert run.returncode == 0, run.output[-3000:]
    assert temporal.check_output(f"openssl x509 -noout -serial -in {certificate}") != old, "the certificate was not issued again"
    after = pids(temporal)
    assert {service for service in SERVICES if before[service] != after[service]} == restarted
    assert temporal.run(cli("operator cluster health")).rc == 0


def ui_default_namespace(temporal) -> str:
    return yaml.safe_load(temporal.check_output("cat /etc/temporal-ui/config/production.yaml"))["defaultNamespace"]


def test_tags_configure_rewrites_the_ui_configuration_and_restarts_the_ui_and_nothing_else(temporal):
    """--tags configure after a change of one UI setting: its file is written again and only the UI restarts."""
    before = pids(temporal)
    run = run_playbook(scenario_dir() / "converge.yml", "--tags", "configure", "--limit", "temporal",
                       extra_vars={"temporal_ui_default_namespace": "billing"})  # fmt: skip
    try:
        assert run.returncode == 0, run.output[-4000:]
        changed, current = [], ""
        for line in run.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                current = line.split("[", 1)[1].rsplit("]", 1)[0].split(" : ", 1)[-1]
            elif line.startswith("changed:"):
                changed.append(current)
        assert sorted(changed) == ["Restart temporal ui", "Write the UI's configuration to /etc/temporal-ui/config/production.yaml"], changed
        assert ui_default_namespace(temporal) == "billing"
        after = pids(temporal)
        assert {service for service in SERVICES if before[service] != after[service]} == {"temporal-ui"}
    finally:
        restored = run_playbook(scenario_dir() / "converge.yml", "--tags", "configure", "--limit", "temporal")
        assert restored.returncode == 0, restored.output[-4000:]
    assert ui_default_namespace(temporal) == "default"


# --- Bad input and the path without an archive ---------------------------------------------------


def test_config_belongs_to_root_and_the_service_group_and_passes_the_validator(temporal):
    config = temporal.file(CONFIG)
    assert (config.user, config.group, config.mode) == ("root", "temporal", 0o640)
    directory = temporal.file("/etc/temporal")
    assert (directory.user, directory.group, directory.mode) == ("root", "temporal", 0o750)
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
    secret = temporal.file(PASSWORD_FILE)
    assert (secret.user, secret.group, secret.mode) == ("root", "temporal", 0o640)
    assert temporal.run("runuser -u temporal -- /usr/bin/cat %s", PASSWORD_FILE).stdout == converge_password()


def test_the_temporal_role_may_not_create_databases(temporal):
    result = psql(temporal, "CREATE DATABASE must_not_exist")
    assert result.rc != 0
    assert "permission denied" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("temporal_server_num_history_shards", "0", "temporal_server_num_history_shards"),
        ("temporal_server_broadcast_address", "temporal.example.internal", "temporal_server_broadcast_address"),
        ("temporal_server_db_password_file", "/etc/temporal/other-password", "temporal_server_db_password_file"),
    ],
)
def test_bad_server_variables_stop_the_play_before_any_change(temporal, variable, value, named):
    run = run_playbook(
        scenario_dir() / "converge.yml",
        "--limit", "temporal",
        extra_vars={variable: value, "temporal_server_config_dir": "/etc/must-not-exist", "temporal_server_data_dir": "/var/lib/must-not-exist"},
    )  # fmt: skip
    assert run.returncode != 0, f"{variable}={value} was accepted"
    assert named in run.output, f"the error for {variable}={value} does not name it:\n{run.output[-3000:]}"
    assert not temporal.file("/etc/must-not-exist").exists, f"{variable}={value}: the play changed the host before failing"
    assert not temporal.file("/var/lib/must-not-exist").exists


def test_without_an_archive_the_install_stops_at_the_fetch_before_any_change(temporal):
    """The default release URL cannot be reached from these machines: the play stops on the controller."""
    run = run_playbook(
        scenario_dir() / "install.yml",
        extra_vars={"temporal_server_config_dir": "/etc/must-not-exist", "temporal_server_data_dir": "/var/lib/must-not-exist",
                    "temporal_server_install_dir": "/opt/must-not-exist"},
    )  # fmt: skip
    assert run.returncode != 0, run.output[-3000:]
    assert f"No temporal-server {SERVER_VERSION} release archive" in run.output, run.output[-3000:]
    assert "temporal_server_local_artifact" in run.output
    for path in ("/etc/must-not-exist", "/var/lib/must-not-exist", "/opt/must-not-exist"):
        assert not temporal.file(path).exists, f"{path}: the play changed the host before failing"
    assert converge_password() not in run.output


# --- Backup and restore drill (last: it replaces the databases) ---------------------------------------

BACKUP_DIR = "/var/backups/temporal-postgresql"
BACKUP_UNIT = "temporal-postgresql-backup"
DRILL_REPORT = REPO / "artifacts" / "backup-drill.txt"


def workflow_status(temporal, workflow_id: str) -> str | None:
    """The workflow's status, or None when the server does not know it."""
    result = temporal.run(cli(f"workflow describe --workflow-id {workflow_id} -o json"))
    if result.rc != 0:
        assert "not found" in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
        return None
    return json.loads(result.stdout)["workflowExecutionInfo"]["status"]


def machine_status(temporal, machine: str) -> str | None:
    result = temporal.run(cli(f"workflow query --workflow-id {machine} --type getStatus -o json"))
    return json.loads(result.stdout)["queryResult"][0] if result.rc == 0 else None


def signal(temporal, machine: str, name: str) -> None:
    sent = temporal.run(cli(f"workflow signal --workflow-id {machine} --name {name}"))
    assert sent.rc == 0, sent.stdout + sent.stderr


def start_machine(temporal, machine: str) -> None:
    start = temporal.run(cli(f"workflow start --type MachineOperatorWorkflow --task-queue stateful-machines --workflow-id {machine} --input '\"{machine}\"'"))
    assert start.rc == 0, start.stdout + start.stderr


def server_serving(temporal) -> bool:
    health = temporal.run(cli("operator cluster health"))
    return health.rc == 0 and "SERVING" in health.stdout


def test_the_restore_refuses_to_run_without_confirmation(pg):
    run = run_playbook(scenario_dir() / "restore.yml")
    assert run.returncode != 0, "the restore ran without temporal_postgresql_restore_confirm"
    assert "temporal_postgresql_restore_confirm=true" in run.output and "Nothing was changed" in run.output, run.output[-3000:]
    assert not {host: c["changed"] for host, c in run.recap().items() if c["changed"]}, run.changed_tasks()


def test_a_backup_restores_the_workflows_it_holds_after_the_cluster_is_lost(pg, temporal):
    """The drill: work before the backup, a backup, work after it, the cluster's data directory removed,
    the restore; what the backup held is back and runs on, what came after it is gone."""
    tag = datetime.datetime.now(datetime.UTC).strftime("%H%M%S")
    # Before the backup: an order that completes, and a long-lived machine brought UP by a signal.
    done_before = execute_an_order(temporal, cli, f"drill-before-{tag}")
    machine = f"drill-machine-{tag}"
    start_machine(temporal, machine)
    assert wait_for(lambda: machine_status(temporal, machine), 30, "getStatus") == "DOWN"
    signal(temporal, machine, "setUp")
    wait_for(lambda: machine_status(temporal, machine) == "UP", 30, "UP after setUp")

    before = len(pg.file(f"{BACKUP_DIR}/backups.jsonl").content_string.splitlines()) if pg.file(f"{BACKUP_DIR}/backups.jsonl").exists else 0
    backed_up = pg.run(f"systemctl start {BACKUP_UNIT}.service")
    assert backed_up.rc == 0, backed_up.stderr + pg.run(f"journalctl -u {BACKUP_UNIT} -n 30 --no-pager").stdout
    (record,) = [json.loads(line) for line in pg.file(f"{BACKUP_DIR}/backups.jsonl").content_string.splitlines()[before:]]
    assert record["status"] == "ok", record
    owner = pg.file(f"{BACKUP_DIR}/{record['backup']}/temporal.pgc").user
    assert owner == "temporal-backup", owner

    # After the backup: an order, a second machine and a signal that the backup cannot hold.
    done_after = execute_an_order(temporal, cli, f"drill-after-{tag}")
    machine_after = f"drill-machine-after-{tag}"
    start_machine(temporal, machine_after)
    signal(temporal, machine, "tearDown")
    wait_for(lambda: machine_status(temporal, machine) == "DOWN", 30, "DOWN after tearDown")

    # The database host loses its cluster.
    pg.run_expect([0], "systemctl stop postgresql")
    pg.run_expect([0], "rm -rf /var/lib/postgresql/15/main")

    started = time.monotonic()
    run = run_playbook(scenario_dir() / "restore.yml", extra_vars={"temporal_postgresql_restore_confirm": True})
    restore_seconds = time.monotonic() - started
    assert run.returncode == 0, run.output[-5000:]
    assert f"Restoring {BACKUP_DIR}/{record['backup']}" in run.output
    assert converge_password() not in run.output
    wait_for(lambda: server_serving(temporal), 120, "the server SERVING after the restore")
    back_seconds = time.monotonic() - started

    # What the backup held: the schema versions, the namespaces, the completed order, the machine as it was.
    for dbname in DATABASES:
        version = psql(temporal, "SELECT curr_version FROM schema_version", dbname=dbname)
        assert version.rc == 0 and version.stdout.strip(), version.stderr
    for namespace in ("default", "billing"):
        assert temporal.run(cli(f"operator namespace describe --namespace {namespace}")).rc == 0, namespace
    assert workflow_status(temporal, done_before) == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    history = run_json(temporal, cli(f"workflow show --workflow-id {done_before} -o json"))
    assert history["events"][-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
    assert wait_for(lambda: machine_status(temporal, machine), 90, "the machine to answer after the restore") == "UP"
    # The long-lived workflow runs on: it follows signals again and completes.
    signal(temporal, machine, "tearDown")
    wait_for(lambda: machine_status(temporal, machine) == "DOWN", 30, "DOWN after tearDown")
    signal(temporal, machine, "complete")
    wait_for(lambda: workflow_status(temporal, machine) == "WORKFLOW_EXECUTION_STATUS_COMPLETED", 30, "the machine to complete")

    # What came after the backup is gone.
    lost = {done_after: workflow_status(temporal, done_after), machine_after: workflow_status(temporal, machine_after)}
    assert lost == {done_after: None, machine_after: None}, lost
    report = "\n".join(
        [
            "Backup and restore drill (molecule production scenario: PostgreSQL 15 on pg, temporal-server on temporal, TLS)",
            f"backup: {record['backup']}, {record['bytes']} bytes (pg_dump custom format of {record['databases']}, and the globals), "
            + f"taken in {record['seconds']} s",
            f"restore: {restore_seconds:.1f} s for the restore playbook (stop the services, new cluster, role setup, pg_restore, start); "
            + f"server SERVING {back_seconds:.1f} s after it began",
            f"held by the backup and back: order {done_before} (completed, with its history), machine {machine} (UP; signalled, completed)",
            f"after the backup, so lost: order {done_after}, machine {machine_after}, the tearDown signal to {machine}",
        ]
    )
    DRILL_REPORT.parent.mkdir(exist_ok=True)
    DRILL_REPORT.write_text(report + "\n")
    print("\n" + report)
