"""Config loading: defaults, strict validation that names the key, env overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from durable_temporal_workers.catalog import load_registry
from durable_temporal_workers.cli import main
from durable_temporal_workers.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    load_config,
    resolve_config_path,
)

ACTIVITIES = load_registry().activity_names()


def load(tmp_path: Path, text: str | None, env: dict[str, str] | None = None) -> Config:
    path = None
    if text is not None:
        path = tmp_path / "config.yaml"
        path.write_text(text)
    return load_config(path, env or {}, known_activities=ACTIVITIES)


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load(tmp_path, None)
    assert config == Config()
    assert config.temporal.address == "127.0.0.1:7233"
    assert config.temporal.namespace == "default"
    assert config.worker.drain_timeout_seconds == 30
    assert config.worker.sandbox is True
    assert config.metrics.bind_address == "127.0.0.1:9464"
    assert config.store.path == "/var/lib/temporal-workers/store.db"
    # Compensations never give up; the rest use the default policy.
    assert config.retries.for_activity("refund").maximum_attempts == 0
    assert config.retries.for_activity("charge_payment").maximum_attempts == 5


def test_config_path_resolution(tmp_path: Path) -> None:
    env = {"TEMPORAL_WORKERS_CONFIG": str(tmp_path / "env.yaml")}
    assert resolve_config_path("/x.yaml", env) == Path("/x.yaml")
    assert resolve_config_path(None, env) == tmp_path / "env.yaml"
    expected = DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None
    assert resolve_config_path(None, {}) == expected


def test_file_values(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
temporal: {address: "temporal.internal:7233", namespace: shop}
worker: {drain_timeout_seconds: 5, max_concurrent_activities: 8, sandbox: false}
metrics: {bind_address: null}
timeouts: {activities: {ship_order: 120}}
retries:
  default: {maximum_attempts: 7, non_retryable_error_types: [InvalidOrder]}
  activities: {charge_payment: {maximum_attempts: 2}}
faults: {enabled: true, activities: {credit: {fail_before_rate: 0.5}}}
""",
    )
    assert config.temporal.address == "temporal.internal:7233"
    assert config.temporal.namespace == "shop"
    assert config.worker.drain_timeout_seconds == 5.0
    assert isinstance(config.worker.drain_timeout_seconds, float)
    assert config.worker.sandbox is False
    assert config.metrics.bind_address is None
    assert config.activity_timeout_seconds("ship_order") == 120
    assert config.activity_timeout_seconds("charge_payment") == 30
    charge = config.retries.for_activity("charge_payment")
    assert charge.maximum_attempts == 2
    assert charge.non_retryable_error_types == ("InvalidOrder",)
    assert config.retries.for_activity("refund").maximum_attempts == 0  # built-in kept
    assert config.faults.activities["credit"].fail_before_rate == 0.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "worker: {drain_timeout_seconds: -3}",
            "worker.drain_timeout_seconds: must be a positive number, got -3",
        ),
        (
            "worker: {drain_timeout: 5}",
            "worker.drain_timeout: unknown key (did you mean 'drain_timeout_seconds'?)",
        ),
        ("wokrer: {}", "wokrer: unknown key (did you mean 'worker'?)"),
        ("worker: {sandbox: maybe}", "worker.sandbox: must be true or false, got 'maybe'"),
        (
            "worker: {max_concurrent_activities: 2.5}",
            "worker.max_concurrent_activities: must be an integer, got 2.5",
        ),
        (
            "temporal: {address: localhost}",
            "temporal.address: must be host:port with a port between 1 and 65535, got 'localhost'",
        ),
        ("temporal: {address: 'h:99999'}", "temporal.address: must be host:port"),
        ("metrics: {bind_address: ':9464'}", "metrics.bind_address: must be host:port"),
        (
            "metrics: {queue_bind_addresses: {orders: 9101}}",
            "metrics.queue_bind_addresses.orders: must be a non-empty string, got 9101",
        ),
        (
            "metrics: {queue_bind_addresses: {orders: 'x:0'}}",
            "metrics.queue_bind_addresses.orders: must be host:port",
        ),
        (
            "timeouts: {activities: {ship_order: -1}}",
            "timeouts.activities.ship_order: must be a positive number, got -1",
        ),
        (
            "timeouts: {workflow_run_seconds: 0}",
            "timeouts.workflow_run_seconds: must be a positive number, got 0",
        ),
        (
            "retries: {activities: {charge_paymnt: {maximum_attempts: 1}}}",
            "retries.activities.charge_paymnt: unknown activity (did you mean 'charge_payment'?)",
        ),
        (
            "retries: {default: {backoff_coefficient: 0.5}}",
            "retries.default.backoff_coefficient: must be at least 1.0, got 0.5",
        ),
        (
            "retries: {default: {non_retryable_error_types: InvalidOrder}}",
            "retries.default.non_retryable_error_types: must be a list of strings",
        ),
        (
            "faults: {activities: {credit: {fail_after_rate: 2}}}",
            "faults.activities.credit.fail_after_rate: must be between 0 and 1, got 2",
        ),
        ("store: {path: ''}", "store.path: must be a non-empty string, got ''"),
        ("logging: {level: LOUD}", "logging.level: must be one of DEBUG, INFO, WARNING, ERROR"),
        ("temporal: [1, 2]", "temporal: must be a mapping, got a list"),
        (
            "temporal: {tls: {ca_file: /nonexistent/ca.pem}}",
            "temporal.tls.ca_file: file does not exist or is not readable",
        ),
        (
            "connect: {initial_backoff_seconds: 5, max_backoff_seconds: 1}",
            "connect.max_backoff_seconds: must be at least connect.initial_backoff_seconds",
        ),
        ("- just\n- a list", "the top level must be a mapping"),
        ("worker: {drain_timeout_seconds: [}", "not valid YAML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    assert message in str(error.value)


def test_tls_needs_cert_and_key_together(tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("cert")
    with pytest.raises(ConfigError, match="cert_file and key_file must be set together"):
        load(tmp_path, f"temporal: {{tls: {{cert_file: {cert}}}}}")
    config = load(tmp_path, None, {"TEMPORAL_TLS_CA_FILE": str(cert)})
    assert config.temporal.tls.active


def test_env_overrides_win_over_the_file(tmp_path: Path) -> None:
    text = """
temporal: {address: "file-host:7233", namespace: from-file}
worker: {drain_timeout_seconds: 5, sandbox: true}
metrics: {bind_address: "127.0.0.1:9999"}
store: {path: /from/file.db}
"""
    env = {
        "TEMPORAL_ADDRESS": "env-host:7233",
        "TEMPORAL_NAMESPACE": "123",  # stays a string
        "TEMPORAL_WORKERS_DRAIN_TIMEOUT": "7",
        "TEMPORAL_WORKERS_SANDBOX": "false",
        "TEMPORAL_WORKERS_METRICS_ADDRESS": "",  # empty disables
        "TEMPORAL_WORKERS_STORE_PATH": "/from/env.db",
        "TEMPORAL_WORKERS_RETRY_NON_RETRYABLE_ERROR_TYPES": "InvalidOrder, AccountNotFound",
        "TEMPORAL_WORKERS__RETRIES__ACTIVITIES__CHARGE_PAYMENT__MAXIMUM_ATTEMPTS": "9",
        "TEMPORAL_WORKERS__TIMEOUTS__ACTIVITIES__BRINGUPMACHINE": "5",
        "UNRELATED": "ignored",
    }
    config = load(tmp_path, text, env)
    assert config.temporal.address == "env-host:7233"
    assert config.temporal.namespace == "123"
    assert config.worker.drain_timeout_seconds == 7.0
    assert config.worker.sandbox is False
    assert config.metrics.bind_address is None
    assert config.store.path == "/from/env.db"
    assert config.retries.default.non_retryable_error_types == ("InvalidOrder", "AccountNotFound")
    assert config.retries.for_activity("charge_payment").maximum_attempts == 9
    assert config.activity_timeout_seconds("BringUpMachine") == 5.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"TEMPORAL_WORKERS_DRAIN_TIMEOUT": "-3"},
            "worker.drain_timeout_seconds: must be a positive number, got -3 "
            "(from $TEMPORAL_WORKERS_DRAIN_TIMEOUT)",
        ),
        (
            {"TEMPORAL_WORKERS_SANDBOX": "perhaps"},
            "worker.sandbox: must be true or false, got 'perhaps' (from $TEMPORAL_WORKERS_SANDBOX)",
        ),
        ({"TEMPORAL_ADDRESS": "nohost"}, "temporal.address: must be host:port"),
        ({"TEMPORAL_WORKERS__WORKER__DRAINTIMEOUT": "1"}, "worker.draintimeout: unknown key"),
    ],
)
def test_bad_env_names_the_key_and_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, env, known_activities=ACTIVITIES)
    assert message in str(error.value)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("temporal: {namespace: shop}\n")
    assert main(["check-config", "--config", str(good)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["temporal"]["namespace"] == "shop"
    assert printed["retries"]["activities"]["refund"] == {"maximum_attempts": 0}

    bad = tmp_path / "bad.yaml"
    bad.write_text("worker: {drain_timeout_seconds: -3}\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "worker.drain_timeout_seconds: must be a positive number, got -3" in err

    assert main(["check-config", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_example_config_is_the_defaults() -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.yaml"
    assert load_config(example, {}, known_activities=ACTIVITIES) == Config()


# --- the shared (PostgreSQL) store ----------------------------------------------------

STORE_URL = "postgresql://temporal_workers@10.0.0.5:5432/temporal_workers?sslmode=prefer"


def test_store_url_and_password_file(tmp_path: Path) -> None:
    assert load(tmp_path, None).store.url is None
    assert load(tmp_path, None).store.password_file is None
    password = tmp_path / "password"
    password.write_text("secret\n")
    config = load(tmp_path, f"store: {{url: '{STORE_URL}', password_file: {password}}}")
    assert config.store.url == STORE_URL
    assert config.store.password_file == str(password)
    assert load(tmp_path, "store: {url: 'postgres://h/db'}").store.url == "postgres://h/db"
    assert load(tmp_path, "store: {url: ''}").store.url is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "store: {url: 'postgresql://tw:hunter2@db/tw'}",
            "store.url: must not carry a password; put it in store.password_file",
        ),
        (
            "store: {url: 'postgresql://tw@db/tw?sslmode=require&password=hunter2'}",
            "store.url: must not carry a password; put it in store.password_file",
        ),
        (
            "store: {url: 'mysql://tw:hunter2@db/tw'}",
            "store.url: must start with postgresql:// or postgres://, got scheme 'mysql'",
        ),
        ("store: {url: 'db.internal:5432'}", "store.url: must start with postgresql://"),
        ("store: {url: 5432}", "store.url: must be a non-empty string, got 5432"),
        (
            f"store: {{url: '{STORE_URL}', password_file: /nonexistent/password}}",
            "store.password_file: file does not exist or is not readable",
        ),
        (
            "store: {password_file: /etc/hostname}",
            "store.password_file: only used with store.url, which is not set",
        ),
        ("store: {uri: 'postgresql://db/tw'}", "store.uri: unknown key (did you mean 'url'?)"),
    ],
)
def test_bad_store_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, text)
    assert message in str(error.value)
    assert "hunter2" not in str(error.value)


def test_store_env_overrides(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("secret\n")
    env = {
        "TEMPORAL_WORKERS_STORE_URL": STORE_URL,
        "TEMPORAL_WORKERS_STORE_PASSWORD_FILE": str(password),
    }
    config = load(tmp_path, "store: {url: 'postgresql://file-host/tw'}", env)
    assert config.store.url == STORE_URL
    assert config.store.password_file == str(password)
    # Empty unsets it, back to SQLite.
    assert load(tmp_path, None, {"TEMPORAL_WORKERS_STORE_URL": ""}).store.url is None
    with pytest.raises(ConfigError) as error:
        load(tmp_path, None, {"TEMPORAL_WORKERS_STORE_URL": "postgresql://tw:hunter2@db/tw"})
    assert "store.url: must not carry a password" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_check_config_reports_store_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: {url: 'postgresql://tw:hunter2@db/tw'}\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "store.url: must not carry a password; put it in store.password_file" in err
    assert "hunter2" not in err

    good = tmp_path / "good.yaml"
    good.write_text(f"store: {{url: '{STORE_URL}'}}\n")
    assert main(["check-config", "--config", str(good)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["store"] == {
        "path": "/var/lib/temporal-workers/store.db",
        "url": STORE_URL,
        "password_file": None,
    }


def test_a_one_queue_process_takes_its_queue_metrics_address(tmp_path: Path) -> None:
    # Queue names are not activity names: they are not checked against the activities.
    text = """
metrics:
  bind_address: null
  queue_bind_addresses: {orders: "0.0.0.0:9101", stateful-machines: "0.0.0.0:9103"}
"""
    metrics = load(tmp_path, text).metrics
    assert metrics.address_for(["orders"]) == "0.0.0.0:9101"
    assert metrics.address_for(["stateful-machines"]) == "0.0.0.0:9103"
    assert metrics.address_for(["sagas"]) is None
    assert metrics.address_for(["orders", "stateful-machines"]) is None
    assert metrics.address_for([]) is None
