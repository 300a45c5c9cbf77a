"""Environment overrides: named variables and the generic ``TEMPORAL_WORKERS__<PATH>`` form.

An override is kept as an :class:`EnvValue` in the raw tree until the builder
knows the type of its field, so ``"5"`` becomes an int for a count and stays
a string for a namespace, and error messages can name the variable.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

# Any key can be set as TEMPORAL_WORKERS__<SECTION>__<KEY>[__<KEY>...].
GENERIC_ENV_PREFIX = "TEMPORAL_WORKERS__"

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
    # Worker versioning, named as the worker role's units set them for any package.
    "TEMPORAL_DEPLOYMENT_NAME": "worker.deployment_name",
    "TEMPORAL_WORKER_BUILD_ID": "worker.build_id",
    "TEMPORAL_VERSIONING_BEHAVIOR": "worker.versioning_behavior",
    "TEMPORAL_WORKERS_CONNECT_ATTEMPTS": "connect.attempts",
    "TEMPORAL_WORKERS_CONNECT_MAX_SECONDS": "connect.max_seconds",
    "TEMPORAL_WORKERS_CONNECT_INITIAL_BACKOFF": "connect.initial_backoff_seconds",
    "TEMPORAL_WORKERS_CONNECT_MAX_BACKOFF": "connect.max_backoff_seconds",
    "TEMPORAL_WORKERS_METRICS_ADDRESS": "metrics.bind_address",
    "TEMPORAL_WORKERS_METRICS_ENABLED": "metrics.enabled",
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


@dataclass(frozen=True)
class EnvValue:
    """A raw string from the environment, converted once its target type is known."""

    var: str
    text: str


def apply_env(
    raw: dict[str, Any], env: Mapping[str, str], known_activities: Collection[str] | None
) -> None:
    """Put every override of ``env`` into ``raw``, the tree read from the YAML file."""
    for var, value in sorted(env.items()):
        if var in ENV_VARS:
            _set_path(raw, ENV_VARS[var].split("."), EnvValue(var, value))
        elif var.startswith(GENERIC_ENV_PREFIX):
            _set_path(raw, _env_path(var, known_activities), EnvValue(var, value))


def from_env_text(tp: Any, text: str) -> Any:
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


def source(raw: Any) -> str:
    """`` (from $VAR)`` when ``raw`` came from the environment, for error messages."""
    return f" (from ${raw.var})" if isinstance(raw, EnvValue) else ""


def _env_path(var: str, known_activities: Collection[str] | None) -> list[str]:
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
