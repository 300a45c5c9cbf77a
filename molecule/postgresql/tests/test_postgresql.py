"""Verifies the postgresql role between two hosts: "db" runs the server, "client" is a Temporal host.

Also checks that the ui role stops before any change when it has no ui-server archive, and runs it
for real from the ui-server archive the harness built.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml
from conftest import assert_check_mode_changes_nothing, converge_password, instance, run_playbook, scenario_dir

USER = "temporal"
DATABASES = ("temporal", "temporal_visibility")
SERVER_BIN = "/usr/lib/postgresql/15/bin/postgres"
DATA_DIR = "/var/lib/postgresql/15/main"
MARKER = "durable_marker"


@pytest.fixture(scope="module")
def db():
    return instance("db")


@pytest.fixture(scope="module")
def client():
    return instance("client")


def psql(client, sql: str, *, secret: str | None = None, dbname: str = "temporal", sslmode: str = "require"):
    """psql from the Temporal host over the network, as the Temporal role; the password goes in the environment."""
    conninfo = f"host=db user={USER} dbname={dbname} sslmode={sslmode} connect_timeout=10"
    return client.run("PGPASSWORD=%s psql %s -AtX -v ON_ERROR_STOP=1 -c %s", secret if secret is not None else converge_password(), conninfo, sql)


def as_postgres(db, sql: str, dbname: str = "postgres"):
    """psql on the database host as the local superuser."""
    return db.run("runuser -u postgres -- psql -AtX -v ON_ERROR_STOP=1 -d %s -c %s", dbname, sql)


def owners(db) -> dict[str, str]:
    names = ", ".join(f"'{name}'" for name in DATABASES)
    result = as_postgres(db, f"SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname IN ({names})")
    assert result.rc == 0, result.stderr
    return dict(line.split("|") for line in result.stdout.splitlines())


def wait_for_login(client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if psql(client, "SELECT 1").rc == 0:
            return
        time.sleep(1)
    result = psql(client, "SELECT 1")
    pytest.fail(f"the Temporal role cannot log in from the Temporal host: {result.stderr}")


def changed(run) -> dict[str, int]:
    return {name: counts["changed"] for name, counts in run.recap().items() if counts["changed"]}


def test_check_mode_on_the_converged_host_changes_nothing(check_mode_run):
    assert_check_mode_changes_nothing(check_mode_run)


def test_both_databases_exist_and_belong_to_the_temporal_role(db):
    assert owners(db) == dict.fromkeys(DATABASES, USER)
    encodings = as_postgres(db, "SELECT DISTINCT pg_encoding_to_char(encoding) FROM pg_database WHERE datname LIKE 'temporal%'")
    assert encodings.stdout.strip() == "UTF8"


def test_the_server_listens_on_the_network(db):
    assert db.socket("tcp://0.0.0.0:5432").is_listening


def test_the_temporal_host_logs_in_over_the_network_with_tls(client):
    for dbname in DATABASES:
        result = psql(client, "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", dbname=dbname)
        assert result.rc == 0, result.stderr
        assert result.stdout.strip() == f"{USER}|t"


def test_the_temporal_role_has_no_rights_but_login(client):
    result = psql(client, f"SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolcanlogin FROM pg_roles WHERE rolname = '{USER}'")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "f|f|f|f|t"


def test_the_temporal_role_may_not_create_databases(client):
    result = psql(client, "CREATE DATABASE x")
    assert result.rc != 0, "CREATE DATABASE was accepted"
    assert "permission denied" in result.stderr


@pytest.fixture(scope="module")
def marker(client) -> str:
    """A table the Temporal role creates in its own database, as Temporal's schema tool would."""
    result = psql(client, f"CREATE TABLE IF NOT EXISTS {MARKER} (id int PRIMARY KEY); INSERT INTO {MARKER} VALUES (1) ON CONFLICT DO NOTHING")
    assert result.rc == 0, result.stderr
    return MARKER


def test_the_temporal_role_owns_its_schema(client, marker):
    assert psql(client, f"SELECT count(*) FROM {marker}").stdout.strip() == "1"


def test_a_wrong_password_is_refused(client):
    result = psql(client, "SELECT 1", secret="not-the-password")
    assert result.rc != 0
    assert "password authentication failed" in result.stderr


def test_only_tls_connections_to_the_temporal_databases_get_in(client):
    plain = psql(client, "SELECT 1", sslmode="disable")
    assert plain.rc != 0 and "no pg_hba.conf entry" in plain.stderr, plain.stderr
    other = psql(client, "SELECT 1", dbname="postgres")
    assert other.rc != 0 and "no pg_hba.conf entry" in other.stderr, other.stderr


def disguised(secret: str) -> str:
    """An extended regular expression that matches the secret but does not contain it, so that
    searching for it puts the secret in no command line (and so in no log)."""
    return "".join(c if c.isalnum() else f"[{c}]" for c in secret[:-1]) + f"[{secret[-1]}]"


def test_the_password_is_in_no_file_and_no_log_on_the_database_host(db):
    pattern = disguised(converge_password())
    # As an unprivileged user: nothing world-readable holds it.
    readable = db.run("runuser -u nobody -- grep -rlsE -- %s /etc/postgresql /var/log/postgresql", pattern)
    assert readable.stdout == "", f"world-readable files hold the password: {readable.stdout}"
    # As root: not even a root-only file holds it in clear text (the server keeps a SCRAM verifier).
    anywhere = db.run("grep -rlsE -- %s /etc /var/log /var/lib/postgresql /root /tmp /var/tmp", pattern)
    assert anywhere.stdout == "", f"files hold the password in clear text: {anywhere.stdout}"
    # The journal compresses long entries, so ask it: module invocations, sudo and command lines.
    journal = db.run("journalctl --no-pager -o verbose | grep -cE -- %s", pattern)
    assert journal.stdout.strip() == "0", "the journal holds the password"
    verifier = as_postgres(db, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{USER}'")
    assert verifier.stdout.startswith("SCRAM-SHA-256$"), "the password must be stored as a SCRAM verifier"


def test_the_password_is_not_in_the_ansible_output():
    run = run_playbook(scenario_dir() / "converge.yml", "--diff", "-vvv")
    assert run.returncode == 0, run.output[-4000:]
    assert converge_password() not in run.output, "the converge output shows the password"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("temporal_postgresql_password", "", "temporal_postgresql_password must be set"),
        ("temporal_postgresql_allowed_networks", ["10.0.0.0/8", "172.16.0.0/33"], "temporal_postgresql_allowed_networks must be"),
        ("temporal_postgresql_allowed_networks", ["db.example.com"], "temporal_postgresql_allowed_networks must be"),
        ("temporal_postgresql_port", "not-a-port", "temporal_postgresql_port"),
        ("temporal_postgresql_max_connections", "lots", "temporal_postgresql_max_connections must be a whole number"),
        ("temporal_postgresql_backup_schedule", "every day at noon", "temporal_postgresql_backup_schedule"),
        ("temporal_postgresql_backup_retention", 0, "temporal_postgresql_backup_retention"),
        ("temporal_postgresql_backup_dir", "/etc/temporal-backups", "temporal_postgresql_backup_dir"),
    ],
)
def test_bad_variables_stop_the_play_before_any_change(db, variable, value, named):
    run = run_playbook(scenario_dir() / "converge.yml", extra_vars={variable: value, "temporal_postgresql_database": "must_not_exist"})
    assert run.returncode != 0, f"{variable}={value!r} was accepted"
    assert named in run.output, f"the error for {variable}={value!r} does not name it:\n{run.output[-3000:]}"
    assert not changed(run), f"{variable}={value!r}: the play changed {changed(run)} before failing"
    assert as_postgres(db, "SELECT count(*) FROM pg_database WHERE datname = 'must_not_exist'").stdout.strip() == "0"


def test_an_existing_server_is_prepared_through_an_admin_that_is_no_superuser(db):
    """temporal_postgresql_install=false: the modules connect over TCP with the admin's credentials."""
    names = yaml.safe_load((scenario_dir() / "external.yml").read_text())[0]["tasks"][0]["vars"]
    user, databases = names["temporal_postgresql_user"], (names["temporal_postgresql_database"], names["temporal_postgresql_visibility_database"])
    admin = as_postgres(
        db,
        "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'temporal_admin') THEN "
        f"CREATE ROLE temporal_admin LOGIN CREATEROLE CREATEDB PASSWORD '{names['temporal_postgresql_admin_password']}'; END IF; END$$",
    )
    assert admin.rc == 0, admin.stderr

    run = run_playbook(scenario_dir() / "external.yml")
    assert run.returncode == 0, run.output[-4000:]
    again = run_playbook(scenario_dir() / "external.yml")
    assert again.returncode == 0 and not changed(again), again.output[-3000:]
    in_list = ", ".join(f"'{name}'" for name in databases)
    owned = as_postgres(db, f"SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname IN ({in_list}) ORDER BY 1")
    assert owned.stdout.splitlines() == [f"{name}|{user}" for name in sorted(databases)]
    flags = as_postgres(db, f"SELECT rolsuper, rolcreatedb, rolcreaterole, rolcanlogin FROM pg_roles WHERE rolname = '{user}'")
    assert flags.stdout.strip() == "f|f|f|t"
    login = db.run(
        "PGPASSWORD=%s psql %s -AtX -c 'SELECT current_user'",
        names["temporal_postgresql_password"],
        f"host=127.0.0.1 user={user} dbname={databases[0]} sslmode=require",
    )
    assert login.rc == 0 and login.stdout.strip() == user, login.stderr

    purged = run_playbook(scenario_dir() / "external.yml", extra_vars={"state": "absent", "purge": True})
    assert purged.returncode == 0, purged.output[-4000:]
    assert as_postgres(db, f"SELECT count(*) FROM pg_database WHERE datname IN ({in_list})").stdout.strip() == "0"
    assert as_postgres(db, f"SELECT count(*) FROM pg_roles WHERE rolname = '{user}'").stdout.strip() == "0"
    assert as_postgres(db, "DROP ROLE temporal_admin").rc == 0


BACKUP_DIR = "/var/backups/temporal-postgresql"
BACKUP_UNIT = "temporal-postgresql-backup"
BACKUP_USER = "temporal-backup"


def backups(db) -> list[str]:
    return sorted(db.check_output("find %s -mindepth 1 -maxdepth 1 -type d -name '2*Z' -printf '%%f\\n'", BACKUP_DIR).split())


def records(db) -> list[dict]:
    return [json.loads(line) for line in db.file(f"{BACKUP_DIR}/backups.jsonl").content_string.splitlines()] if db.file(f"{BACKUP_DIR}/backups.jsonl").exists else []


def test_the_backup_timer_runs_on_the_schedule_set(db):
    timer = db.service(f"{BACKUP_UNIT}.timer")
    assert timer.is_enabled and timer.is_running
    assert db.check_output(f"systemctl show -p TimersCalendar --value {BACKUP_UNIT}.timer").startswith("{ OnCalendar=*-*-* 04:40:00")
    verify = db.run(f"systemd-analyze verify /etc/systemd/system/{BACKUP_UNIT}.service /etc/systemd/system/{BACKUP_UNIT}.timer")
    assert verify.rc == 0, verify.stderr
    exposure = db.check_output(f"systemd-analyze security {BACKUP_UNIT}.service | tail -n 1")
    assert float(exposure.split(":")[1].split()[0]) <= 2.0, exposure
    account = db.user(BACKUP_USER)
    assert account.shell == "/usr/sbin/nologin" and account.uid < 1000
    flags = as_postgres(db, f"SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolcanlogin FROM pg_roles WHERE rolname = '{BACKUP_USER}'")
    assert flags.stdout.strip() == "f|f|f|f|t"
    granted = as_postgres(db, f"SELECT string_agg(b.rolname, ',') FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
                              f"JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '{BACKUP_USER}'")  # fmt: skip
    assert granted.stdout.strip() == "pg_read_all_data"


def test_a_backup_runs_as_the_backup_account_and_retention_prunes(db, marker):
    before = len(records(db))
    for _ in range(3):
        started = db.run(f"systemctl start {BACKUP_UNIT}.service")
        assert started.rc == 0, started.stderr + db.run(f"journalctl -u {BACKUP_UNIT} -n 30 --no-pager").stdout
    runs = records(db)[before:]
    assert [run["status"] for run in runs] == ["ok"] * 3, runs
    # Two kept (temporal_postgresql_backup_retention in converge.yml): the first run of the three is gone.
    kept = backups(db)
    assert kept == [run["backup"] for run in runs[1:]], (kept, runs)
    newest = f"{BACKUP_DIR}/{kept[-1]}"
    listing = db.check_output("ls -ln %s", newest)
    for name in ("globals.sql", "temporal.pgc", "temporal_visibility.pgc", "SHA256SUMS"):
        path = db.file(f"{newest}/{name}")
        assert path.exists and path.user == BACKUP_USER and path.group == "postgres" and path.mode == 0o640, (name, listing)
    assert db.run("cd %s && sha256sum --quiet -c SHA256SUMS", newest).rc == 0
    # The archive holds the marker table's row, readable by pg_restore; the roles' file holds no password.
    data = db.check_output("pg_restore --data-only --table=%s -f - %s/temporal.pgc", marker, newest)
    assert "COPY public.durable_marker" in data
    assert "SCRAM-SHA-256" not in db.check_output("cat %s/globals.sql", newest)
    assert runs[-1]["bytes"] > 0 and runs[-1]["seconds"] >= 0
    print(f"backup of the postgresql scenario: {runs[-1]['bytes']} bytes in {runs[-1]['seconds']} s")


UI_PATHS = ("/etc/temporal-ui", "/opt/temporal-ui", "/etc/systemd/system/temporal-ui.service")


def test_the_ui_without_an_archive_stops_before_any_change(client):
    run = run_playbook(scenario_dir() / "ui.yml", extra_vars={"temporal_ui_local_artifact": ""})
    assert run.returncode != 0, "the ui role ran without an archive and without the release site"
    assert "temporal_ui_local_artifact" in run.output, run.output[-3000:]
    assert "Nothing was changed" in run.output, run.output[-3000:]
    assert not changed(run), f"the ui role changed {changed(run)} before failing"
    for path in UI_PATHS:
        assert not client.file(path).exists, f"{path} was created"
    assert not client.user("temporal-ui").exists


def test_the_ui_runs_from_the_archive_built_by_the_harness(client):
    run = run_playbook(scenario_dir() / "ui.yml")
    assert run.returncode == 0, run.output[-4000:]
    try:
        again = run_playbook(scenario_dir() / "ui.yml")
        assert again.returncode == 0 and not changed(again), again.output[-3000:]
        service = client.service("temporal-ui")
        assert service.is_enabled and service.is_running
        pid = client.check_output("systemctl show -p MainPID --value temporal-ui")
        assert client.check_output(f"ps -o user= -p {pid}") == "temporal-ui"
        assert client.user("temporal-ui").shell == "/usr/sbin/nologin"
        config = client.file("/etc/temporal-ui/config/production.yaml")
        assert config.exists and config.mode == 0o640 and config.group == "temporal-ui"
        assert "temporalGrpcAddress: db:7233" in config.content_string
        # On the host's own address only; without production mode (TLS), plain HTTP.
        ip = client.check_output("hostname -I").split()[0]
        assert client.socket(f"tcp://{ip}:8080").is_listening
        assert not client.socket("tcp://0.0.0.0:8080").is_listening
        assert '"OK"' in client.check_output(f"curl -fsS http://{ip}:8080/healthz")
        assert client.run(f"curl -fsS -o /dev/null http://{ip}:8080/").rc == 0
        verify = client.run("systemd-analyze verify /etc/systemd/system/temporal-ui.service")
        assert verify.rc == 0, verify.stderr
    finally:
        removed = run_playbook(scenario_dir() / "ui.yml", extra_vars={"temporal_ui_state": "absent", "temporal_ui_purge_data": True})
        assert removed.returncode == 0, removed.output[-3000:]
    for path in UI_PATHS:
        assert not client.file(path).exists, f"absent left {path} behind"


def test_absent_keeps_the_databases_and_takes_away_the_login(db, client, marker):
    run = run_playbook(scenario_dir() / "remove.yml")
    assert run.returncode == 0, run.output[-4000:]
    assert owners(db) == dict.fromkeys(DATABASES, USER), "absent must keep the databases"
    assert as_postgres(db, f"SELECT count(*) FROM {marker}", dbname="temporal").stdout.strip() == "1"
    assert as_postgres(db, f"SELECT rolcanlogin FROM pg_roles WHERE rolname = '{USER}'").stdout.strip() == "f"
    refused = psql(client, "SELECT 1")
    assert refused.rc != 0, "the Temporal role still logs in after absent"
    assert "durable.temporal" not in db.file("/etc/postgresql/15/main/pg_hba.conf").content_string
    assert not db.file(f"/etc/systemd/system/{BACKUP_UNIT}.timer").exists, "absent left the backup timer"
    assert backups(db), "absent must keep the backups"

    again = run_playbook(scenario_dir() / "remove.yml")
    assert again.returncode == 0 and not changed(again), again.output[-3000:]

    restored = run_playbook(scenario_dir() / "converge.yml")
    assert restored.returncode == 0, restored.output[-4000:]
    wait_for_login(client)
    assert psql(client, f"SELECT count(*) FROM {marker}").stdout.strip() == "1", "present again must find the data"


def test_absent_with_purge_drops_everything_then_converge_starts_afresh(db, client, marker):
    run = run_playbook(scenario_dir() / "remove.yml", extra_vars={"purge": True})
    assert run.returncode == 0, run.output[-4000:]
    assert not db.file(SERVER_BIN).exists, "purge must remove the server this role installed"
    assert not db.file(DATA_DIR).exists, "purge must remove the cluster's data"
    assert psql(client, "SELECT 1").rc != 0

    again = run_playbook(scenario_dir() / "remove.yml", extra_vars={"purge": True})
    assert again.returncode == 0 and not changed(again), again.output[-3000:]

    # Leave the hosts converged for whatever runs after the verifier.
    restored = run_playbook(scenario_dir() / "converge.yml")
    assert restored.returncode == 0, restored.output[-4000:]
    wait_for_login(client)
    assert owners(db) == dict.fromkeys(DATABASES, USER)
    missing = psql(client, f"SELECT count(*) FROM {marker}")
    assert missing.rc != 0 and "does not exist" in missing.stderr, "purge must have dropped the old data"
