"""What the subcommands share: exit codes, the config, a client call, output, argument types."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from durable_temporal_workers.catalog import load_registry
from durable_temporal_workers.client import FAILED, InputError, WorkflowClient
from durable_temporal_workers.config import Config, load_config, resolve_config_path
from durable_temporal_workers.connection import connect, make_runtime
from durable_temporal_workers.logs import setup_logging
from durable_temporal_workers.registry import Registry, RegistryError

log = logging.getLogger("durable_temporal_workers")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    pass


def config_for(args: argparse.Namespace, registry: Registry) -> Config:
    path = resolve_config_path(args.config, os.environ)
    return load_config(path, os.environ, known_activities=registry.activity_names())


def fault_fields(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "fail_times": args.fail_times or {},
        "fail_after_commit_times": args.fail_after_commit_times or {},
    }


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def start_workflow(args: argparse.Namespace, workflow: str, inputs: list[Any]) -> int:
    workflow_id = args.id or new_id(workflow.removesuffix("Workflow").lower())

    async def run(client: WorkflowClient) -> tuple[Any, int]:
        outcome = await client.start(workflow, inputs, workflow_id, wait=not args.no_wait)
        return outcome, EXIT_FAILED if outcome["status"] == FAILED else EXIT_OK

    return client_call(args, run)


def client_call(
    args: argparse.Namespace,
    call: Callable[[WorkflowClient], Awaitable[tuple[Any, int]]],
) -> int:
    registry = load_registry()
    config = config_for(args, registry)
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
    print_json(payload)
    if code != EXIT_OK and isinstance(payload, dict) and "error" in payload:
        error = payload["error"]
        print(
            f"temporal-workers: workflow {payload.get('workflow_id')} failed: "
            f"{error['type']}: {error['message']}",
            file=sys.stderr,
        )
    return code


def print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2))


def json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from err


def counts_arg(text: str) -> dict[str, int]:
    value = json_arg(text)
    if not isinstance(value, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value.values()
    ):
        raise argparse.ArgumentTypeError('expected {"activity_name": times, ...}')
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer of at least 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


class Parsers:
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
            type=counts_arg,
            metavar="JSON",
            help='fail the first N attempts of activities: {"charge_payment": 2}',
        )
        self.faults.add_argument(
            "--fail-after-commit-times",
            type=counts_arg,
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
