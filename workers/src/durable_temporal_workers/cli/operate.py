"""Running the workers and the API, and checking a host: serve, api, queues, check-config, check."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from durable_temporal_workers.catalog import load_registry
from durable_temporal_workers.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Parsers,
    UsageError,
    config_for,
    log,
    positive_int,
    print_json,
)
from durable_temporal_workers.config import Config, config_as_dict
from durable_temporal_workers.connection import StartupError
from durable_temporal_workers.logs import setup_logging
from durable_temporal_workers.registry import Registry
from durable_temporal_workers.store import SqliteStore, StoreUnavailable, open_store
from durable_temporal_workers.worker import run_workers


def add_commands(p: Parsers) -> None:
    serve = p.add("serve", cmd_serve, "run workers until SIGTERM/SIGINT", [p.config])
    serve.add_argument(
        "--queue",
        action="append",
        metavar="QUEUE",
        help="task queue to serve; repeatable (default: all registered)",
    )
    api = p.add("api", cmd_api, "serve the HTTP API in front of the workflows", [p.config])
    api.add_argument("--host", default="127.0.0.1", help="address to listen on")
    api.add_argument("--port", type=positive_int, default=8000)
    api.add_argument("--workers", type=positive_int, default=1, help="uvicorn worker processes")
    api.add_argument("--tls-cert", metavar="PATH", help="serve HTTPS with this certificate")
    api.add_argument("--tls-key", metavar="PATH", help="and this private key")
    api.add_argument(
        "--graceful-seconds",
        type=positive_int,
        default=20,
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may take to finish",
    )
    p.add("queues", cmd_queues, "print the registered task queues, one per line")
    check = p.add(
        "check-config",
        cmd_check_config,
        "validate the config and print the effective one",
        [p.config],
    )
    check.add_argument("--format", choices=("json", "yaml"), default="json")
    p.add(
        "check",
        cmd_check,
        "check the side-effect store's data: integer cents and the audit (exit 1 on a problem)",
        [p.config],
    )


def cmd_serve(args: argparse.Namespace) -> int:
    registry = load_registry()
    config = config_for(args, registry)
    setup_logging(config.logging.level)
    registry.plan(args.queue)  # wiring errors exit 2 here, before connecting
    return asyncio.run(_serve(config, registry, args.queue))


async def _serve(config: Config, registry: Registry, queues: Sequence[str] | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if stop.is_set():
            log.info("%s again: still draining", signum.name)
            return
        log.info("%s received: stopping", signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await run_workers(config, registry, queues, stop)
    except (StartupError, StoreUnavailable) as err:
        log.error("%s", err)
        return EXIT_FAILED


def cmd_api(args: argparse.Namespace) -> int:
    # The config is checked here, so a bad one exits 2 before any port is bound.
    registry = load_registry()
    config = config_for(args, registry)
    setup_logging(config.logging.level)
    if args.config:
        # uvicorn's worker processes build the app from the environment.
        os.environ["TEMPORAL_WORKERS_CONFIG"] = str(Path(args.config).resolve())
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    try:
        import uvicorn  # noqa: PLC0415 - only the API needs the optional `api` dependencies
    except ImportError as err:
        raise UsageError(f"the API needs the package's `api` extra: {err}") from err
    uvicorn.run(
        "durable_temporal_workers.api:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
        # SIGTERM: stop accepting, let requests in flight finish for up to this long.
        timeout_graceful_shutdown=args.graceful_seconds,
        log_level=config.logging.level.lower(),
        access_log=False,
        server_header=False,
    )
    return EXIT_OK


def cmd_queues(args: argparse.Namespace) -> int:
    for queue in load_registry().queues():
        print(queue)
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    effective = config_as_dict(config_for(args, load_registry()))
    if args.format == "yaml":
        print(yaml.safe_dump(effective, sort_keys=False), end="")
    else:
        print_json(effective)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Check the data of the side-effect store the workers would open."""
    config = config_for(args, load_registry())
    path = Path(config.store.path)
    if not config.store.url and not path.exists():
        raise UsageError(f"store.path {path}: no such file")
    try:
        # Read as it is: a check changes nothing, not even an old file's tables.
        store = open_store(config.store, upgrade=False)
    except StoreUnavailable as err:
        print(f"temporal-workers: error: {err}", file=sys.stderr)
        return EXIT_FAILED
    try:
        problems = store.check()
        notes = []
        if isinstance(store, SqliteStore) and store.legacy_tables():
            notes.append(
                "made by an earlier version: the workers rebuild its tables as STRICT tables"
                " at their next start" + (", once the problems are fixed" if problems else "")
            )
    finally:
        store.close()
    # store.url never carries a password: the config refuses one.
    where = config.store.url or str(path)
    print_json({"store": where, "ok": not problems, "problems": problems, "notes": notes})
    for problem in problems:
        print(f"temporal-workers: store {where}: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK
