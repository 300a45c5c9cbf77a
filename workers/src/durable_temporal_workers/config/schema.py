"""The configuration schema: one frozen dataclass per section, with defaults and value checks.

Each field's default is the value the workers run with when neither the YAML
file nor the environment sets it. A field's ``check`` (in its metadata) says
what a value must be; :mod:`.build` runs it and names the dotted key in the error.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any


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


def _versioning_behavior(value: Any) -> str | None:
    behaviors = ("pinned", "auto_upgrade")
    return None if value in behaviors else f"must be one of {', '.join(behaviors)}"


def _build_id(value: Any) -> str | None:
    if value is None or (value and all(c.isalnum() or c in "._-" for c in value)):
        return None
    return "must be letters, digits, '.', '_' and '-'"


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
    # Worker versioning: with a deployment name, the worker polls as build_id of that Worker
    # Deployment, and each workflow stays on the version that started it (pinned) or moves to
    # the current one at its next task (auto_upgrade).
    deployment_name: str | None = None
    build_id: str | None = _checked(None, _build_id)
    versioning_behavior: str = _checked("pinned", _versioning_behavior)


@dataclass(frozen=True)
class ConnectConfig:
    """Start-up connection retries; null for a limit means no limit."""

    attempts: int | None = _checked(None, _at_least_one)
    max_seconds: float | None = _checked(60.0, _positive)
    initial_backoff_seconds: float = _checked(0.5, _positive)
    max_backoff_seconds: float = _checked(10.0, _positive)


@dataclass(frozen=True)
class MetricsConfig:
    # false: no endpoint at all (a version draining next to the current one, whose ports it holds).
    enabled: bool = True
    # One endpoint per process; null or "" disables it.
    bind_address: str | None = _checked("127.0.0.1:9464", _host_port)
    # A process serving exactly one of these task queues binds this address instead, so one
    # config file serves a host's one-process-per-queue services (and no client binds a port).
    queue_bind_addresses: Mapping[str, str] = field(
        default_factory=dict, metadata={"check": _host_port, "free_keys": True}
    )

    def address_for(self, queues: Collection[str]) -> str | None:
        """The endpoint of a process that serves ``queues``."""
        if not self.enabled:
            return None
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
