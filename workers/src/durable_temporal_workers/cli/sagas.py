"""Orders and sagas: order, transfer, book-trip, seed-accounts, balances."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from durable_temporal_workers.catalog import load_registry
from durable_temporal_workers.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Parsers,
    UsageError,
    client_call,
    config_for,
    fault_fields,
    json_arg,
    new_id,
    positive_int,
    print_json,
    start_workflow,
)
from durable_temporal_workers.client import FAILED, WorkflowClient
from durable_temporal_workers.store import StoreUnavailable, open_store


def add_commands(p: Parsers) -> None:
    order = p.add("order", cmd_order, "run an OrderWorkflow", [p.starting, p.faults])
    order.add_argument(
        "--items-json",
        type=json_arg,
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
    transfer.add_argument("--amount", type=positive_int, required=True, metavar="CENTS")

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
        type=json_arg,
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


def cmd_order(args: argparse.Namespace) -> int:
    args.id = args.id or new_id("order")
    order = {
        "order_id": args.id,
        "items": args.items_json,
        "address": args.address,
        "email": args.email,
        "ship_delay_seconds": args.ship_delay,
        **fault_fields(args),
    }
    return start_workflow(args, "OrderWorkflow", [order])


def cmd_transfer(args: argparse.Namespace) -> int:
    transfer = {
        "from_account": args.from_account,
        "to_account": args.to_account,
        "amount_cents": args.amount,
        **fault_fields(args),
    }
    return start_workflow(args, "TransferMoneyWorkflow", [transfer])


def cmd_book_trip(args: argparse.Namespace) -> int:
    trip = {
        "car": args.car,
        "hotel": args.hotel,
        "flight": args.flight,
        "customer": args.customer,
        **fault_fields(args),
    }
    return start_workflow(args, "BookTripWorkflow", [trip])


def cmd_seed_accounts(args: argparse.Namespace) -> int:
    if not isinstance(args.balances_json, dict):
        raise UsageError('--balances-json must be an object: {"account": cents, ...}')
    seed = {"balances_cents": args.balances_json}

    async def run(client: WorkflowClient) -> tuple[Any, int]:
        outcome = await client.start("SeedAccountsWorkflow", [seed], args.id or new_id("seed"))
        if outcome["status"] == FAILED:
            return outcome, EXIT_FAILED
        accounts = outcome["result"]
        return {"accounts": accounts, "total_cents": sum(accounts.values())}, EXIT_OK

    return client_call(args, run)


def cmd_balances(args: argparse.Namespace) -> int:
    if args.direct:
        config = config_for(args, load_registry())
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
        print_json(
            {"accounts": accounts, "total_cents": sum(accounts.values()), "side_effects": report}
        )
        return EXIT_OK

    async def run(client: WorkflowClient) -> tuple[Any, int]:
        outcome = await client.start("BalancesWorkflow", [], new_id("balances"))
        if outcome["status"] == FAILED:
            return outcome, EXIT_FAILED
        return outcome["result"], EXIT_OK

    return client_call(args, run)
