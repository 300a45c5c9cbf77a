"""Worker and client configuration: a YAML file, then environment overrides.

Validation is strict on purpose: an unknown key is an error (a typo in a
timeout must not silently fall back to the default), and every message starts
with the dotted key it is about, e.g.
``worker.drain_timeout_seconds: must be a positive number, got -3``.

- :mod:`.schema`: the sections, their defaults and value checks;
- :mod:`.env`: the environment variables that override the file;
- :mod:`.build`: strict building of the dataclasses from the raw tree;
- :mod:`.load`: which file, reading it, and the rules that span two keys.
"""

from durable_temporal_workers.config.env import ENV_VARS, GENERIC_ENV_PREFIX
from durable_temporal_workers.config.load import (
    CONFIG_PATH_ENV,
    DEFAULT_CONFIG_PATH,
    config_as_dict,
    load_config,
    resolve_config_path,
)
from durable_temporal_workers.config.schema import (
    Config,
    ConfigError,
    ConnectConfig,
    FaultRates,
    FaultsConfig,
    LoggingConfig,
    MetricsConfig,
    RetriesConfig,
    RetryConfig,
    RetryOverride,
    StoreConfig,
    TemporalConfig,
    TimeoutsConfig,
    TlsConfig,
    WorkerConfig,
)

__all__ = [
    "CONFIG_PATH_ENV",
    "DEFAULT_CONFIG_PATH",
    "ENV_VARS",
    "GENERIC_ENV_PREFIX",
    "Config",
    "ConfigError",
    "ConnectConfig",
    "FaultRates",
    "FaultsConfig",
    "LoggingConfig",
    "MetricsConfig",
    "RetriesConfig",
    "RetryConfig",
    "RetryOverride",
    "StoreConfig",
    "TemporalConfig",
    "TimeoutsConfig",
    "TlsConfig",
    "WorkerConfig",
    "config_as_dict",
    "load_config",
    "resolve_config_path",
]
