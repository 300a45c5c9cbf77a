"""Any registered workflow: start one with JSON input, wait for one's outcome."""

from __future__ import annotations

import argparse
from typing import Any

from durable_temporal_workers.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Parsers,
    client_call,
    json_arg,
    start_workflow,
)
from durable_temporal_workers.client import FAILED, WorkflowClient

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


def add_commands(p: Parsers) -> None:
    start = p.add("start", cmd_start, "start any registered workflow with JSON input", [p.starting])
    start.add_argument("workflow", help=f"workflow type or alias ({', '.join(ALIASES)})")
    start.add_argument("--input", type=json_arg, metavar="JSON", help="the workflow's argument")

    result = p.add("result", cmd_result, "wait for a workflow and print its outcome", [p.config])
    result.add_argument("--id", required=True)
    result.add_argument("--run-id")


def cmd_start(args: argparse.Namespace) -> int:
    name = ALIASES.get(args.workflow, args.workflow)
    inputs = [] if args.input is None else [args.input]
    return start_workflow(args, name, inputs)


def cmd_result(args: argparse.Namespace) -> int:
    async def run(client: WorkflowClient) -> tuple[Any, int]:
        outcome = await client.result(args.id, args.run_id)
        return outcome, EXIT_FAILED if outcome["status"] == FAILED else EXIT_OK

    return client_call(args, run)
