"""The long-lived workflows: machine (signals, a query) and loyalty (an update, a query)."""

from __future__ import annotations

import argparse
from typing import Any

from durable_temporal_workers.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Parsers,
    client_call,
    non_negative_int,
    positive_int,
)
from durable_temporal_workers.client import FAILED, WorkflowClient


def add_commands(p: Parsers) -> None:
    machine = p.add("machine", cmd_machine, "drive a MachineOperatorWorkflow")
    actions = machine.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", parents=[p.config], help="start (or attach to) it")
    start.add_argument("--continue-as-new-after", type=positive_int, metavar="SIGNALS")
    send = actions.add_parser("signal", parents=[p.config], help="send a signal")
    send.add_argument("signal", choices=("setUp", "tearDown", "complete"))
    actions.add_parser("status", parents=[p.config], help="query getStatus")
    actions.add_parser("result", parents=[p.config], help="wait for the final state")
    for sub in actions.choices.values():
        sub.add_argument("--id", required=True, help="machine id (also the workflow id)")

    loyalty = p.add("loyalty", cmd_loyalty, "drive a LoyaltyWorkflow")
    actions = loyalty.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", parents=[p.config], help="start (or attach to) it")
    start.add_argument("--points", type=non_negative_int, default=0, help="starting points")
    start.add_argument("--gold-threshold", type=positive_int, metavar="POINTS")
    start.add_argument("--continue-as-new-after", type=positive_int, metavar="UPDATES")
    add = actions.add_parser("add-point", parents=[p.config], help="update addLoyaltyPoint")
    add.add_argument("--points", type=positive_int, default=1)
    actions.add_parser("message", parents=[p.config], help="query getLoyaltyMessage")
    for sub in actions.choices.values():
        sub.add_argument("--id", required=True, help="customer id (also the workflow id)")


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

    return client_call(args, run)


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

    return client_call(args, run)
