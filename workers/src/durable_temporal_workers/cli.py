"""The ``temporal-workers`` command: run workers, and drive workflows from scripts.

Client subcommands print JSON on stdout. Exit codes: 0 success, 1 a workflow
failed or Temporal could not be reached (message on stderr), 2 bad usage,
bad config or inconsistent registry.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
import traceback
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from durable_temporal_workers import __version__
from durable_temporal_workers.catalog import load_registry
from durable_temporal_workers.client import FAILED, InputError, WorkflowClient
from durable_temporal_workers.config import (
    Config,
    ConfigError,
    config_as_dict,
    load_config,
    resolve_config_path,
)
from durable_temporal_workers.connection import StartupError, connect, make_runtime
from durable_temporal_workers.logs import setup_logging
from durable_temporal_workers.registry import Registry, RegistryError
from durable_temporal_workers.store import SqliteStore, StoreUnavailable, open_store
from durable_temporal_workers.worker import run_workers

log = logging.getLogger("durable_temporal_workers")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Short names accepted by `start`, besides the workflow type names.
ALIASES = {
    "order": "OrderWorkflow",
    "transfer": "TransferMoneyWorkflow",
    "book-trip": "BookTripWorkflow",
    "machine": "MachineOperatorWorkflow",
    "loyalty": "LoyaltyWorkflow",
    "seed-accounts": "SeedAccountsWorkflow",
    "balances": "BalancesWorkflow",
}


class UsageError(Exception):
    pass


def run() -> NoReturn:
    """Console-script entry point: ``main()``, then exit without interpreter teardown.

    The SDK's Rust threads can crash CPython's finalization ("PyGILState_Release
    ... must be current", temporalio/sdk-python#300), turning exit code 0 into
    134. Everything is flushed first, so skipping teardown loses nothing.
    """
    try:
        code = main()
    except Exception:
        traceback.print_exc()
        code = EXIT_FAILED
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (ConfigError, RegistryError, InputError, UsageError) as err:
        print(f"temporal-workers: error: {err}", file=sys.stderr)
        return EXIT_USAGE


# --- commands -------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    registry = load_registry()
    config = _config(args, registry)
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
    config = _config(args, registry)
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
    effective = config_as_dict(_config(args, load_registry()))
    if args.format == "yaml":
        print(yaml.safe_dump(effective, sort_keys=False), end="")
    else:
        _print(effective)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Check the data of the side-effect store the workers would open."""
    config = _config(args, load_registry())
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
    _print({"store": where, "ok": not problems, "problems": problems, "notes": notes})
    for problem in problems:
        print(f"temporal-workers: store {where}: {problem}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


def cmd_order(args: argparse.Namespace) -> int:
    args.id = args.id or _new_id("order")
    order = {
        "order_id": args.id,
        "items": args.items_json,
        "address": args.address,
        "email": args.email,
        "ship_delay_seconds": args.ship_delay,
        **_faults(args),
    }
    return _start(args, "OrderWorkflow", [order])


def cmd_transfer(args: argparse.Namespace) -> int:
    transfer = {
        "from_account": args.from_account,
        "to_account": args.to_account,
        "amount_cents": args.amount,
        **_faults(args),
    }
    return _start(args, "TransferMoneyWorkflow", [transfer])


def cmd_book_trip(args: argparse.Namespace) -> int:
    trip = {
        "car": args.car,
        "hotel": args.hotel,
        "flight": args.flight,
        "customer": args.customer,
        **_faults(args),
    }
    return _start(args, "BookTripWorkflow", [trip])


def cmd_seed_accounts(args: argparse.Namespace) -> int:
    if not isinstance(args.balances_json, dict):
        raise UsageError('--balances-json must be an object: {"account": cents, ...}')
    seed = {"balances_cents": args.balances_json}

    async def run(client: WorkflowClient) -> tuple[Any, int]:
        outcome = await client.start("SeedAccountsWorkflow", [seed], args.id or _new_id("seed"))
        if outcome["status"] == FAILED:
            return outcome, EXIT_FAILED
        accounts = outcome["result"]
        return {"accounts": accounts, "total_cents": sum(accounts.values())}, EXIT_OK

    return _client_call(args, run)


def cmd_balances(args: argparse.Namespace) -> int:
    if args.direct:
        config = _config(args, load_registry())
        path = Path(config.store.path)
        if not config.store.url and not path.exists():
            raise UsageError(f"store.path {path}: no such file")
        try:
            store = open_store(config.store)
        except StoreUnavailable as err:
            print(f"temporal-workers: error: {err}", file=sys.stderr)
            return EXIT_FAILED
        try:
            accounts = store.balances()
            report = dataclasses.asdict(store.report())
        finally:
            store.close()
        _print(
            {"accounts": accounts, "total_cents": sum(accounts.values()), "side_effects": report}
        )
        return EXIT_OK

    async def run(client: WorkflowClient) -> tuple[Any, int]:
        outcome = await client.start("BalancesWorkflow", [], _new_id("balances"))
        if outcome["status"] == FAILED:
            return outcome, EXIT_FAILED
        return outcome["result"], EXIT_OK

    return _client_call(args, run)


def cmd_machine(args: argparse.Namespace) -> int:
    async def run(client: WorkflowClient) -> tuple[Any, int]:
        if args.action == "start":
            carry = (
                []
                if args.continue_as_new_after is None
                else [{"continue_as_new_after": args.continue_as_new_after}]
            )
            outcome = await client.start(
                "MachineOperatorWorkflow", [args.id, *carry], args.id, wait=False
            )
            return outcome, EXIT_OK
        if args.action == "signal":
            return await client.signal(args.id, args.signal), EXIT_OK
        if args.action == "status":
            return {
                "workflow_id": args.id,
                "state": await client.query(args.id, "getStatus"),
            }, EXIT_OK
        outcome = await client.result(args.id)
        return outcome, EXIT_FAILED if outcome["status"] == FAILED else EXIT_OK

    return _client_call(args, run)


def cmd_loyalty(args: argparse.Namespace) -> int:
    async def run(client: WorkflowClient) -> tuple[Any, int]:
        if args.action == "start":
            account: dict[str, Any] = {"customer_id": args.id, "points": args.points}
            if args.gold_threshold is not None:
                account["gold_threshold"] = args.gold_threshold
            if args.continue_as_new_after is not None:
                account["continue_as_new_after"] = args.continue_as_new_after
            outcome = await client.start("LoyaltyWorkflow", [account], args.id, wait=False)
            return outcome, EXIT_OK
        if args.action == "add-point":
            message = await client.update(args.id, "addLoyaltyPoint", [args.points])
        else:
            message = await client.query(args.id, "getLoyaltyMessage")
        return {"workflow_id": args.id, "message": message}, EXIT_OK

    return _client_call(args, run)


def cmd_start(args: argparse.Namespace) -> int:
    name = ALIASES.get(args.workflow, args.workflow)
    inputs = [] if args.input is None else [args.input]
    return _start(args, name, inputs)


def cmd_result(args: argparse.Namespace) -> int:
    async def run(client: WorkflowClient) -> tuple[Any, int]:
        outcome = await client.result(args.id, args.run_id)
        return outcome, EXIT_FAILED if outcome["status"] == FAILED else EXIT_OK

    return _client_call(args, run)


# --- plumbing -------------------------------------------------------------------


def _config(args: argparse.Namespace, registry: Registry) -> Config:
    path = resolve_config_path(args.config, os.environ)
    return load_config(path, os.environ, known_activities=registry.activity_names())


def _faults(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "fail_times": args.fail_times or {},
        "fail_after_commit_times": args.fail_after_commit_times or {},
    }


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _start(args: argparse.Namespace, workflow: str, inputs: list[Any]) -> int:
    workflow_id = args.id or _new_id(workflow.removesuffix("Workflow").lower())

    async def run(client: WorkflowClient) -> tuple[Any, int]:
        outcome = await client.start(workflow, inputs, workflow_id, wait=not args.no_wait)
        return outcome, EXIT_FAILED if outcome["status"] == FAILED else EXIT_OK

    return _client_call(args, run)


def _client_call(
    args: argparse.Namespace,
    call: Callable[[WorkflowClient], Awaitable[tuple[Any, int]]],
) -> int:
    registry = load_registry()
    config = _config(args, registry)
    # Connection retries are worth seeing; routine progress is not.
    setup_logging("WARNING" if config.logging.level.upper() != "DEBUG" else "DEBUG")

    async def run() -> tuple[Any, int]:
        client = await connect(config, make_runtime())
        assert client is not None  # only None when a stop event is given
        return await call(WorkflowClient(client, config, registry))

    try:
        payload, code = asyncio.run(run())
    except (RegistryError, InputError):
        raise
    except Exception as err:  # an RPC error: not found, rejected update, ...
        message = getattr(err, "message", None) or str(err)
        print(f"temporal-workers: error: {type(err).__name__}: {message}", file=sys.stderr)
        return EXIT_FAILED
    _print(payload)
    if code != EXIT_OK and isinstance(payload, dict) and "error" in payload:
        error = payload["error"]
        print(
            f"temporal-workers: workflow {payload.get('workflow_id')} failed: "
            f"{error['type']}: {error['message']}",
            file=sys.stderr,
        )
    return code


def _print(payload: Any) -> None:
    print(json.dumps(payload, indent=2))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from err


def _counts(text: str) -> dict[str, int]:
    value = _json(text)
    if not isinstance(value, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value.values()
    ):
        raise argparse.ArgumentTypeError('expected {"activity_name": times, ...}')
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


class _Parsers:
    """The subcommand table and the option groups that subcommands share."""

    def __init__(self, commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self.commands = commands
        self.config = argparse.ArgumentParser(add_help=False)
        self.config.add_argument(
            "--config",
            metavar="PATH",
            help="YAML config (default: $TEMPORAL_WORKERS_CONFIG, else "
            "/etc/temporal-workers/config.yaml if it exists, else built-in defaults)",
        )
        self.starting = argparse.ArgumentParser(add_help=False, parents=[self.config])
        self.starting.add_argument("--id", help="workflow id (default: generated)")
        self.starting.add_argument(
            "--no-wait", action="store_true", help="print the ids once started, do not wait"
        )
        self.faults = argparse.ArgumentParser(add_help=False)
        self.faults.add_argument(
            "--fail-times",
            type=_counts,
            metavar="JSON",
            help='fail the first N attempts of activities: {"charge_payment": 2}',
        )
        self.faults.add_argument(
            "--fail-after-commit-times",
            type=_counts,
            metavar="JSON",
            help="apply the side effect, then fail the first N attempts",
        )

    def add(
        self,
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help: str,
        parents: Sequence[argparse.ArgumentParser] = (),
    ) -> argparse.ArgumentParser:
        sub = self.commands.add_parser(name, help=help, description=help, parents=list(parents))
        sub.set_defaults(handler=handler)
        return sub


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="temporal-workers",
        description="Temporal workers of durable.temporal, and a client to drive them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parsers = _Parsers(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    _add_worker_commands(parsers)
    _add_order_and_saga_commands(parsers)
    _add_actor_commands(parsers)
    _add_generic_commands(parsers)
    return parser


def _add_worker_commands(p: _Parsers) -> None:
    serve = p.add("serve", cmd_serve, "run workers until SIGTERM/SIGINT", [p.config])
    serve.add_argument(
        "--queue",
        action="append",
        metavar="QUEUE",
        help="task queue to serve; repeatable (default: all registered)",
    )
    api = p.add("api", cmd_api, "serve the HTTP API in front of the workflows", [p.config])
    api.add_argument("--host", default="127.0.0.1", help="address to listen on")
    api.add_argument("--port", type=_positive_int, default=8000)
    api.add_argument("--workers", type=_positive_int, default=1, help="uvicorn worker processes")
    api.add_argument("--tls-cert", metavar="PATH", help="serve HTTPS with this certificate")
    api.add_argument("--tls-key", metavar="PATH", help="and this private key")
    api.add_argument(
        "--graceful-seconds",
        type=_positive_int,
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


def _add_order_and_saga_commands(p: _Parsers) -> None:
    order = p.add("order", cmd_order, "run an OrderWorkflow", [p.starting, p.faults])
    order.add_argument(
        "--items-json",
        type=_json,
        required=True,
        metavar="JSON",
        help='[{"sku": "A-1", "quantity": 2, "unit_price_cents": 1250}]',
    )
    order.add_argument("--address", help="shipping address (required for a valid order)")
    order.add_argument("--email")
    order.add_argument(
        "--ship-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="make ship_order take this long",
    )

    transfer = p.add(
        "transfer", cmd_transfer, "run a TransferMoneyWorkflow", [p.starting, p.faults]
    )
    transfer.add_argument("--from", dest="from_account", required=True, metavar="ACCOUNT")
    transfer.add_argument("--to", dest="to_account", required=True, metavar="ACCOUNT")
    transfer.add_argument("--amount", type=_positive_int, required=True, metavar="CENTS")

    trip = p.add("book-trip", cmd_book_trip, "run a BookTripWorkflow", [p.starting, p.faults])
    trip.add_argument("--car", required=True)
    trip.add_argument("--hotel", required=True)
    trip.add_argument("--flight", required=True)
    trip.add_argument("--customer", default="")

    seed = p.add(
        "seed-accounts",
        cmd_seed_accounts,
        "create accounts or set their balances (through the sagas workers)",
        [p.config],
    )
    seed.add_argument(
        "--balances-json",
        type=_json,
        required=True,
        metavar="JSON",
        help='{"alice": 10000, "bob": 5000} in cents',
    )
    seed.add_argument("--id", default=None, help="workflow id (default: generated)")

    balances = p.add(
        "balances", cmd_balances, "print balances, their total and side-effect counts", [p.config]
    )
    balances.add_argument(
        "--direct",
        action="store_true",
        help="read store.url (else store.path) directly instead of asking the sagas workers",
    )


def _add_actor_commands(p: _Parsers) -> None:
    machine = p.add("machine", cmd_machine, "drive a MachineOperatorWorkflow")
    actions = machine.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", parents=[p.config], help="start (or attach to) it")
    start.add_argument("--continue-as-new-after", type=_positive_int, metavar="SIGNALS")
    send = actions.add_parser("signal", parents=[p.config], help="send a signal")
    send.add_argument("signal", choices=("setUp", "tearDown", "complete"))
    actions.add_parser("status", parents=[p.config], help="query getStatus")
    actions.add_parser("result", parents=[p.config], help="wait for the final state")
    for sub in actions.choices.values():
        sub.add_argument("--id", required=True, help="machine id (also the workflow id)")

    loyalty = p.add("loyalty", cmd_loyalty, "drive a LoyaltyWorkflow")
    actions = loyalty.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", parents=[p.config], help="start (or attach to) it")
    start.add_argument("--points", type=_non_negative_int, default=0, help="starting points")
    start.add_argument("--gold-threshold", type=_positive_int, metavar="POINTS")
    start.add_argument("--continue-as-new-after", type=_positive_int, metavar="UPDATES")
    add = actions.add_parser("add-point", parents=[p.config], help="update addLoyaltyPoint")
    add.add_argument("--points", type=_positive_int, default=1)
    actions.add_parser("message", parents=[p.config], help="query getLoyaltyMessage")
    for sub in actions.choices.values():
        sub.add_argument("--id", required=True, help="customer id (also the workflow id)")


def _add_generic_commands(p: _Parsers) -> None:
    start = p.add("start", cmd_start, "start any registered workflow with JSON input", [p.starting])
    start.add_argument("workflow", help=f"workflow type or alias ({', '.join(ALIASES)})")
    start.add_argument("--input", type=_json, metavar="JSON", help="the workflow's argument")

    result = p.add("result", cmd_result, "wait for a workflow and print its outcome", [p.config])
    result.add_argument("--id", required=True)
    result.add_argument("--run-id")
