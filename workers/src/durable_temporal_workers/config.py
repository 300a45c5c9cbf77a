"""Worker and client configuration: a YAML file, then environment overrides.

Validation is strict on purpose: an unknown key is an error (a typo in a
timeout must not silently fall back to the default), and every message starts
with the dotted key it is about, e.g.
``worker.drain_timeout_seconds: must be a positive number, got -3``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

DEFAULT_CONFIG_PATH = Path("/etc/temporal-workers/config.yaml")
CONFIG_PATH_ENV = "TEMPORAL_WORKERS_CONFIG"
# Any key can be set as TEMPORAL_WORKERS__<SECTION>__<KEY>[__<KEY>...].
GENERIC_ENV_PREFIX = "TEMPORAL_WORKERS__"


class ConfigError(ValueError):
    """Invalid configuration. The message names the offending key."""


# --- value checks, attached to fields through metadata ------------------------

Check = Callable[[Any], str | None]


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be a positive number"


def _at_least_one(value: Any) -> str | None:
    return None if value >= 1 else "must be at least 1"


def _non_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be zero or a positive number"


def _rate(value: Any) -> str | None:
    return None if 0 <= value <= 1 else "must be between 0 and 1"


def _backoff_coefficient(value: Any) -> str | None:
    return None if value >= 1 else "must be at least 1.0"


def _host_port(value: Any) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "must be host:port with a port between 1 and 65535"
    return None


def _log_level(value: Any) -> str | None:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR")
    return None if value.upper() in levels else f"must be one of {', '.join(levels)}"


def _readable_file(value: Any) -> str | None:
    return None if os.access(value, os.R_OK) else "file does not exist or is not readable"


def _checked(default: Any, check: Check) -> Any:
    return field(default=default, metadata={"check": check})


def _mapping() -> Any:
    return field(default_factory=dict)


# --- the schema ---------------------------------------------------------------


@dataclass(frozen=True)
class TlsConfig:
    """TLS to the Temporal frontend. Setting any file turns TLS on."""

    enabled: bool = False
    ca_file: str | None = _checked(None, _readable_file)
    cert_file: str | None = _checked(None, _readable_file)
    key_file: str | None = _checked(None, _readable_file)
    server_name: str | None = None

    @property
    def active(self) -> bool:
        return self.enabled or any((self.ca_file, self.cert_file, self.key_file))


@dataclass(frozen=True)
class TemporalConfig:
    address: str = _checked("127.0.0.1:7233", _host_port)
    namespace: str = "default"
    tls: TlsConfig = field(default_factory=TlsConfig)


@dataclass(frozen=True)
class WorkerConfig:
    """Worker tuning. The numbers default to the SDK's own defaults."""

    drain_timeout_seconds: float = _checked(30.0, _positive)
    max_concurrent_activities: int = _checked(100, _at_least_one)
    max_concurrent_workflow_tasks: int = _checked(100, _at_least_one)
    max_cached_workflows: int = _checked(1000, _non_negative)
    max_concurrent_activity_polls: int = _checked(5, _at_least_one)
    max_concurrent_workflow_task_polls: int = _checked(5, _at_least_one)
    sandbox: bool = True


@dataclass(frozen=True)
class ConnectConfig:
    """Start-up connection retries; null for a limit means no limit."""

    attempts: int | None = _checked(None, _at_least_one)
    max_seconds: float | None = _checked(60.0, _positive)
    initial_backoff_seconds: float = _checked(0.5, _positive)
    max_backoff_seconds: float = _checked(10.0, _positive)


@dataclass(frozen=True)
class MetricsConfig:
    # One endpoint per process; null or "" disables it.
    bind_address: str | None = _checked("127.0.0.1:9464", _host_port)
    # A process serving exactly one of these task queues binds this address instead, so one
    # config file serves a host's one-process-per-queue services (and no client binds a port).
    queue_bind_addresses: Mapping[str, str] = field(
        default_factory=dict, metadata={"check": _host_port, "free_keys": True}
    )

    def address_for(self, queues: Collection[str]) -> str | None:
        """The endpoint of a process that serves ``queues``."""
        if len(queues) == 1:
            (queue,) = queues
            if queue in self.queue_bind_addresses:
                return self.queue_bind_addresses[queue]
        return self.bind_address


@dataclass(frozen=True)
class StoreConfig:
    """SQLite at ``path`` for one host, or PostgreSQL at ``url`` when several hosts share it."""

    path: str = "/var/lib/temporal-workers/store.db"
    # When set, the PostgreSQL store is used and ``path`` is ignored.
    url: str | None = None
    # Its first line is the database password, which config and process args never hold.
    password_file: str | None = _checked(None, _readable_file)


@dataclass(frozen=True)
class TimeoutsConfig:
    """Workflow timeouts are set by clients at start; null means none."""

    workflow_execution_seconds: float | None = _checked(None, _positive)
    workflow_run_seconds: float | None = _checked(None, _positive)
    workflow_task_seconds: float = _checked(10.0, _positive)
    activity_start_to_close_seconds: float = _checked(30.0, _positive)
    # Every activity heartbeats while it runs (see policies.py), so a worker that dies
    # mid-activity, or a cancel, is noticed within this long instead of start_to_close.
    activity_heartbeat_seconds: float | None = _checked(6.0, _positive)
    # Per-activity start_to_close overrides, keyed by activity name.
    activities: Mapping[str, float] = field(default_factory=dict, metadata={"check": _positive})


@dataclass(frozen=True)
class RetryConfig:
    maximum_attempts: int = _checked(5, _non_negative)  # 0 means unlimited
    initial_interval_seconds: float = _checked(1.0, _positive)
    backoff_coefficient: float = _checked(2.0, _backoff_coefficient)
    maximum_interval_seconds: float = _checked(30.0, _positive)
    non_retryable_error_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetryOverride:
    """Per-activity retry settings; unset fields come from ``retries.default``."""

    maximum_attempts: int | None = _checked(None, _non_negative)
    initial_interval_seconds: float | None = _checked(None, _positive)
    backoff_coefficient: float | None = _checked(None, _backoff_coefficient)
    maximum_interval_seconds: float | None = _checked(None, _positive)
    non_retryable_error_types: tuple[str, ...] | None = None


def _compensations_never_give_up() -> dict[str, RetryOverride]:
    # A saga that stops undoing half-way loses money, so compensations retry
    # until they succeed. They are idempotent, so that is safe.
    unlimited = RetryOverride(maximum_attempts=0)
    return {
        name: unlimited
        for name in (
            "refund",
            "reverse_credit",
            "cancel_car",
            "cancel_hotel",
            "cancel_flight",
            "refund_payment",
            "cancel_shipment",
        )
    }


@dataclass(frozen=True)
class RetriesConfig:
    default: RetryConfig = field(default_factory=RetryConfig)
    activities: Mapping[str, RetryOverride] = field(default_factory=_compensations_never_give_up)

    def for_activity(self, name: str) -> RetryConfig:
        override = self.activities.get(name)
        if override is None:
            return self.default
        changes = {
            f.name: getattr(override, f.name)
            for f in dataclasses.fields(override)
            if getattr(override, f.name) is not None
        }
        return dataclasses.replace(self.default, **changes)


@dataclass(frozen=True)
class FaultRates:
    """Random failures for tests: before the side effect, or after it committed."""

    fail_before_rate: float = _checked(0.0, _rate)
    fail_after_rate: float = _checked(0.0, _rate)


@dataclass(frozen=True)
class FaultsConfig:
    """Fault injection, a test tool: off unless a test deployment turns it on.

    While ``enabled`` is false, workflow inputs that ask for failures
    (``fail_times``, ``fail_after_commit_times``) are refused as InvalidInput,
    so no client can make an activity, or a compensation, fail on purpose.
    """

    enabled: bool = False
    activities: Mapping[str, FaultRates] = _mapping()


@dataclass(frozen=True)
class LoggingConfig:
    level: str = _checked("INFO", _log_level)


@dataclass(frozen=True)
class Config:
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    connect: ConnectConfig = field(default_factory=ConnectConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    timeouts: TimeoutsConfig = field(default_factory=TimeoutsConfig)
    retries: RetriesConfig = field(default_factory=RetriesConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def activity_timeout_seconds(self, name: str) -> float:
        return self.timeouts.activities.get(name, self.timeouts.activity_start_to_close_seconds)


# Named environment variables. Anything else: TEMPORAL_WORKERS__<PATH>.
ENV_VARS: dict[str, str] = {
    "TEMPORAL_ADDRESS": "temporal.address",
    "TEMPORAL_NAMESPACE": "temporal.namespace",
    "TEMPORAL_TLS": "temporal.tls.enabled",
    "TEMPORAL_TLS_CA_FILE": "temporal.tls.ca_file",
    "TEMPORAL_TLS_CERT_FILE": "temporal.tls.cert_file",
    "TEMPORAL_TLS_KEY_FILE": "temporal.tls.key_file",
    "TEMPORAL_TLS_SERVER_NAME": "temporal.tls.server_name",
    "TEMPORAL_WORKERS_DRAIN_TIMEOUT": "worker.drain_timeout_seconds",
    "TEMPORAL_WORKERS_MAX_CONCURRENT_ACTIVITIES": "worker.max_concurrent_activities",
    "TEMPORAL_WORKERS_MAX_CONCURRENT_WORKFLOW_TASKS": "worker.max_concurrent_workflow_tasks",
    "TEMPORAL_WORKERS_MAX_CACHED_WORKFLOWS": "worker.max_cached_workflows",
    "TEMPORAL_WORKERS_MAX_CONCURRENT_ACTIVITY_POLLS": "worker.max_concurrent_activity_polls",
    "TEMPORAL_WORKERS_MAX_CONCURRENT_WORKFLOW_TASK_POLLS": (
        "worker.max_concurrent_workflow_task_polls"
    ),
    "TEMPORAL_WORKERS_SANDBOX": "worker.sandbox",
    "TEMPORAL_WORKERS_CONNECT_ATTEMPTS": "connect.attempts",
    "TEMPORAL_WORKERS_CONNECT_MAX_SECONDS": "connect.max_seconds",
    "TEMPORAL_WORKERS_CONNECT_INITIAL_BACKOFF": "connect.initial_backoff_seconds",
    "TEMPORAL_WORKERS_CONNECT_MAX_BACKOFF": "connect.max_backoff_seconds",
    "TEMPORAL_WORKERS_METRICS_ADDRESS": "metrics.bind_address",
    "TEMPORAL_WORKERS_STORE_PATH": "store.path",
    "TEMPORAL_WORKERS_STORE_URL": "store.url",
    "TEMPORAL_WORKERS_STORE_PASSWORD_FILE": "store.password_file",
    "TEMPORAL_WORKERS_WORKFLOW_EXECUTION_TIMEOUT": "timeouts.workflow_execution_seconds",
    "TEMPORAL_WORKERS_WORKFLOW_RUN_TIMEOUT": "timeouts.workflow_run_seconds",
    "TEMPORAL_WORKERS_WORKFLOW_TASK_TIMEOUT": "timeouts.workflow_task_seconds",
    "TEMPORAL_WORKERS_ACTIVITY_TIMEOUT": "timeouts.activity_start_to_close_seconds",
    "TEMPORAL_WORKERS_ACTIVITY_HEARTBEAT_TIMEOUT": "timeouts.activity_heartbeat_seconds",
    "TEMPORAL_WORKERS_RETRY_MAXIMUM_ATTEMPTS": "retries.default.maximum_attempts",
    "TEMPORAL_WORKERS_RETRY_INITIAL_INTERVAL": "retries.default.initial_interval_seconds",
    "TEMPORAL_WORKERS_RETRY_BACKOFF_COEFFICIENT": "retries.default.backoff_coefficient",
    "TEMPORAL_WORKERS_RETRY_MAXIMUM_INTERVAL": "retries.default.maximum_interval_seconds",
    "TEMPORAL_WORKERS_RETRY_NON_RETRYABLE_ERROR_TYPES": (
        "retries.default.non_retryable_error_types"
    ),
    "TEMPORAL_WORKERS_LOG_LEVEL": "logging.level",
    "TEMPORAL_WORKERS_FAULTS_ENABLED": "faults.enabled",
}


def resolve_config_path(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """``--config``, else $TEMPORAL_WORKERS_CONFIG, else the default file if present."""
    if explicit:
        return Path(explicit)
    if env.get(CONFIG_PATH_ENV):
        return Path(env[CONFIG_PATH_ENV])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    known_activities: Collection[str] | None = None,
) -> Config:
    """Read ``path`` (if any), apply ``env`` overrides, and validate.

    ``known_activities`` lets per-activity keys be checked for typos too.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"{path}: cannot read config file: {err.strerror}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        raw = loaded or {}
    names = tuple(known_activities) if known_activities is not None else None
    for var, value in sorted(env.items()):
        if var in ENV_VARS:
            _set_path(raw, ENV_VARS[var].split("."), _EnvValue(var, value))
        elif var.startswith(GENERIC_ENV_PREFIX):
            keys = _env_path(var, names)
            _set_path(raw, keys, _EnvValue(var, value))
    config = _Builder(names).build(Config, raw, "")
    _check_consistency(config)
    return config


def config_as_dict(config: Config) -> dict[str, Any]:
    """Plain dict of the effective config (tuples as lists), for printing."""
    plain = typing.cast(dict[str, Any], _plain(dataclasses.asdict(config)))
    # Show per-activity retry overrides with the fields they set, not a wall of nulls.
    overrides = plain["retries"]["activities"]
    for name, override in overrides.items():
        overrides[name] = {k: v for k, v in override.items() if v is not None}
    return plain


# --- implementation -----------------------------------------------------------


@dataclass(frozen=True)
class _EnvValue:
    """A raw string from the environment, converted once its target type is known."""

    var: str
    text: str


def _env_path(var: str, known_activities: tuple[str, ...] | None) -> list[str]:
    parts = [p.lower() for p in var[len(GENERIC_ENV_PREFIX) :].split("__")]
    if known_activities:
        # Activity names keep their case (e.g. BringUpMachine); env vars cannot.
        by_lower = {name.lower(): name for name in known_activities}
        parts = [by_lower.get(p, p) for p in parts]
    return parts


def _set_path(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[keys[-1]] = value


T = TypeVar("T")


class _Builder:
    def __init__(self, known_activities: tuple[str, ...] | None) -> None:
        self._known_activities = known_activities

    def build(self, cls: type[T], raw: Any, path: str) -> T:
        if isinstance(raw, _EnvValue):
            raw = self._yaml_from_env(raw, path)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path or 'config'}: must be a mapping, got {_show(raw)}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for key in raw:
            if key not in fields:
                hint = difflib.get_close_matches(str(key), fields, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ConfigError(f"{_join(path, str(key))}: unknown key{suggestion}")
        values: dict[str, Any] = {}
        for name, f in fields.items():
            if name in raw:
                check = f.metadata.get("check")
                # Mappings are keyed by activity name unless the field says otherwise.
                free_keys = f.metadata.get("free_keys", False)
                value = self._value(hints[name], raw[name], _join(path, name), check, free_keys)
                if isinstance(value, dict) and f.default_factory is not dataclasses.MISSING:
                    # Per-activity tables add to the built-in entries, not replace them.
                    value = {**f.default_factory(), **value}
                values[name] = value
        return cls(**values)

    def _value(
        self, tp: Any, raw: Any, path: str, check: Check | None, free_keys: bool = False
    ) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType) and type(None) in args:
            inner = next(a for a in args if a is not type(None))
            if isinstance(raw, _EnvValue) and raw.text.strip().lower() in ("", "null", "none"):
                return None
            if raw is None or raw == "":
                return None
            return self._value(inner, raw, path, check, free_keys)
        if dataclasses.is_dataclass(tp):
            return self.build(typing.cast(type[Any], tp), raw, path)
        if origin in (Mapping, dict):
            return self._mapping(args[1], raw, path, check, free_keys)
        if origin is tuple:
            return self._strings(raw, path)
        value = self._scalar(tp, raw, path)
        if check is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{path}: {problem}, got {_show(value)}{_source(raw)}")
        return value

    def _mapping(
        self, value_type: Any, raw: Any, path: str, check: Check | None, free_keys: bool
    ) -> Any:
        if isinstance(raw, _EnvValue):
            raw = self._yaml_from_env(raw, path)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: must be a mapping, got {_show(raw)}")
        result: dict[str, Any] = {}
        for raw_key, item in raw.items():
            key = str(raw_key)
            known = None if free_keys else self._known_activities
            if known is not None and key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise ConfigError(f"{_join(path, key)}: unknown activity{suggestion}")
            result[key] = self._value(value_type, item, _join(path, key), check)
        return result

    def _strings(self, raw: Any, path: str) -> tuple[str, ...]:
        if isinstance(raw, _EnvValue):
            return tuple(s.strip() for s in raw.text.split(",") if s.strip())
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise ConfigError(f"{path}: must be a list of strings, got {_show(raw)}")
        return tuple(raw)

    def _scalar(self, tp: Any, raw: Any, path: str) -> Any:
        value = _from_env_text(tp, raw.text) if isinstance(raw, _EnvValue) else raw
        accepts, expected = _SCALARS[tp]
        if not accepts(value):
            raise ConfigError(f"{path}: {expected}, got {_show(value)}{_source(raw)}")
        return float(value) if tp is float else value

    def _yaml_from_env(self, raw: _EnvValue, path: str) -> Any:
        try:
            return yaml.safe_load(raw.text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML (from ${raw.var}): {err}") from err


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_SCALARS: dict[type, tuple[Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "must be true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "must be an integer"),
    float: (_is_number, "must be a number"),
    str: (lambda v: isinstance(v, str) and bool(v), "must be a non-empty string"),
}


def _from_env_text(tp: Any, text: str) -> Any:
    """Convert an environment string to ``tp``; leave it as text if it does not fit."""
    text = text.strip()
    if tp is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return text
    if tp in (int, float):
        for convert in (int, float):
            try:
                return convert(text)
            except ValueError:
                continue
        return text
    return text


def _check_consistency(config: Config) -> None:
    """Rules that span two keys."""
    tls = config.temporal.tls
    if bool(tls.cert_file) != bool(tls.key_file):
        raise ConfigError("temporal.tls: cert_file and key_file must be set together")
    connect = config.connect
    if connect.max_backoff_seconds < connect.initial_backoff_seconds:
        raise ConfigError(
            "connect.max_backoff_seconds: must be at least connect.initial_backoff_seconds, "
            f"got {_show(connect.max_backoff_seconds)}"
        )
    retries = [("retries.default", config.retries.default)] + [
        (f"retries.activities.{name}", config.retries.for_activity(name))
        for name in config.retries.activities
    ]
    for path, retry in retries:
        if retry.maximum_interval_seconds < retry.initial_interval_seconds:
            raise ConfigError(
                f"{path}.maximum_interval_seconds: must be at least initial_interval_seconds, "
                f"got {_show(retry.maximum_interval_seconds)}"
            )
    if config.faults.activities and not config.faults.enabled:
        raise ConfigError(
            "faults.activities: injects failures, which needs faults.enabled: true "
            "(a test tool, off in production)"
        )
    _check_store(config.store)


def _check_store(store: StoreConfig) -> None:
    # Not a field check: those echo the value, and this one may hold a secret.
    if store.url is None:
        if store.password_file is not None:
            raise ConfigError("store.password_file: only used with store.url, which is not set")
        return
    try:
        url = urllib.parse.urlsplit(store.url)
        password = url.password
    except ValueError as err:
        raise ConfigError(f"store.url: not a valid URL: {err}") from err
    if url.scheme not in ("postgresql", "postgres"):
        raise ConfigError(
            f"store.url: must start with postgresql:// or postgres://, got scheme {url.scheme!r}"
        )
    if password is not None or "password" in urllib.parse.parse_qs(url.query):
        raise ConfigError("store.url: must not carry a password; put it in store.password_file")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _source(raw: Any) -> str:
    return f" (from ${raw.var})" if isinstance(raw, _EnvValue) else ""


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
