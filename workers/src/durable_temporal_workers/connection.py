"""Connecting to Temporal: TLS, the metrics runtime, and retries at start-up."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import TLSConfig

from durable_temporal_workers.config import Config, TlsConfig

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The worker cannot start: metrics endpoint, or Temporal out of reach."""


class ConnectError(StartupError):
    """Temporal could not be reached within the configured attempts or time."""


def tls_config(tls: TlsConfig) -> TLSConfig | bool:
    if not tls.active:
        return False

    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return TLSConfig(
        server_root_ca_cert=read(tls.ca_file),
        client_cert=read(tls.cert_file),
        client_private_key=read(tls.key_file),
        domain=tls.server_name,
    )


def make_runtime(metrics_address: str | None = None) -> Runtime:
    """The SDK runtime: core logs go through Python logging, metrics to Prometheus.

    Every worker of the process shares it through the client, so a process
    has one metrics endpoint however many queues it serves.
    """
    # Forwarded, core logs get our one-line format instead of colored console output.
    logging_config = LoggingConfig(
        filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )
    address = metrics_address
    if not address:
        return Runtime(telemetry=TelemetryConfig(logging=logging_config))
    try:
        prometheus = PrometheusConfig(bind_address=address)
        return Runtime(telemetry=TelemetryConfig(logging=logging_config, metrics=prometheus))
    except ValueError as err:  # e.g. the port is taken
        raise StartupError(f"metrics endpoint {address}: {err}") from err


async def connect(
    config: Config,
    runtime: Runtime,
    stop: asyncio.Event | None = None,
) -> Client | None:
    """Connect, retrying with exponential backoff so boot order does not matter.

    Returns None if ``stop`` is set while waiting; raises ConnectError when the
    ``connect`` limits are used up.
    """
    limits = config.connect
    address = config.temporal.address
    started = time.monotonic()
    delay = limits.initial_backoff_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            client = await Client.connect(
                address,
                namespace=config.temporal.namespace,
                tls=tls_config(config.temporal.tls),
                runtime=runtime,
            )
        except RuntimeError as err:
            elapsed = time.monotonic() - started
            out_of_attempts = limits.attempts is not None and attempt >= limits.attempts
            out_of_time = limits.max_seconds is not None and elapsed + delay > limits.max_seconds
            if out_of_attempts or out_of_time:
                raise ConnectError(
                    f"cannot connect to Temporal at {address} "
                    f"after {attempt} attempts in {elapsed:.1f}s: {err}"
                ) from err
            log.warning(
                "cannot connect to Temporal at %s (attempt %d): %s; retrying in %.1fs",
                address,
                attempt,
                err,
                delay,
            )
            if stop is None:
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                    return None
                except TimeoutError:
                    pass
            delay = min(delay * 2, limits.max_backoff_seconds)
            continue
        log.info("connected to Temporal at %s, namespace %s", address, config.temporal.namespace)
        return client
