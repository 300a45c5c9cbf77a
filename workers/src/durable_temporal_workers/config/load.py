"""Loading: which file, reading it, the environment on top, and the rules that span two keys."""

from __future__ import annotations

import dataclasses
import os
import typing
import urllib.parse
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from durable_temporal_workers.config.build import Builder, show
from durable_temporal_workers.config.env import apply_env
from durable_temporal_workers.config.schema import Config, ConfigError, StoreConfig

DEFAULT_CONFIG_PATH = Path("/etc/temporal-workers/config.yaml")
CONFIG_PATH_ENV = "TEMPORAL_WORKERS_CONFIG"


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
    apply_env(raw, env, names)
    config = Builder(names).build(Config, raw, "")
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


def _check_consistency(config: Config) -> None:
    """Rules that span two keys."""
    tls = config.temporal.tls
    if bool(tls.cert_file) != bool(tls.key_file):
        raise ConfigError("temporal.tls: cert_file and key_file must be set together")
    connect = config.connect
    if connect.max_backoff_seconds < connect.initial_backoff_seconds:
        raise ConfigError(
            "connect.max_backoff_seconds: must be at least connect.initial_backoff_seconds, "
            f"got {show(connect.max_backoff_seconds)}"
        )
    retries = [("retries.default", config.retries.default)] + [
        (f"retries.activities.{name}", config.retries.for_activity(name))
        for name in config.retries.activities
    ]
    for path, retry in retries:
        if retry.maximum_interval_seconds < retry.initial_interval_seconds:
            raise ConfigError(
                f"{path}.maximum_interval_seconds: must be at least initial_interval_seconds, "
                f"got {show(retry.maximum_interval_seconds)}"
            )
    if config.faults.activities and not config.faults.enabled:
        raise ConfigError(
            "faults.activities: injects failures, which needs faults.enabled: true "
            "(a test tool, off in production)"
        )
    worker = config.worker
    if bool(worker.deployment_name) != bool(worker.build_id):
        raise ConfigError(
            "worker: deployment_name and build_id must be set together (worker versioning)"
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


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
