"""Sagas: compensation, money conservation under faults, reverse-order undo."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from durable_temporal_workers.config import Config, FaultRates, FaultsConfig
from durable_temporal_workers.models import (
    SAGAS,
    BalancesReport,
    SeedAccounts,
    Transfer,
    Trip,
)
from durable_temporal_workers.store import SqliteStore
from durable_temporal_workers.workflows.sagas import (
    BalancesWorkflow,
    BookTripWorkflow,
    SeedAccountsWorkflow,
    TransferMoneyWorkflow,
)

from .conftest import CHAOS_NAMESPACE, on_namespace, serving, transfer_outcome


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def seed(client: Client, balances: dict[str, int]) -> dict[str, int]:
    return await client.execute_workflow(
        SeedAccountsWorkflow.run, SeedAccounts(balances), id=unique("seed"), task_queue=SAGAS
    )


async def test_transfer_moves_money(client: Client) -> None:
    alice, bob = unique("alice"), unique("bob")
    await seed(client, {alice: 10_000, bob: 500})
    result = await client.execute_workflow(
        TransferMoneyWorkflow.run, Transfer(alice, bob, 2_500), id=unique("t"), task_queue=SAGAS
    )
    assert result.status == "COMPLETED"
    report = await client.execute_workflow(BalancesWorkflow.run, id=unique("b"), task_queue=SAGAS)
    assert isinstance(report, BalancesReport)
    assert report.accounts[alice] == 7_500
    assert report.accounts[bob] == 3_000


async def test_failed_credit_is_refunded(client: Client, store: SqliteStore) -> None:
    alice, bob = unique("alice"), unique("bob")
    await seed(client, {alice: 10_000, bob: 0})
    transfer_id = unique("transfer")
    # More failures than the 3 attempts the test config allows: the credit fails.
    transfer = Transfer(alice, bob, 4_000, fail_times={"credit": 10})
    with pytest.raises(WorkflowFailureError) as failure:
        await client.execute_workflow(
            TransferMoneyWorkflow.run, transfer, id=transfer_id, task_queue=SAGAS
        )
    error = failure.value.cause
    assert isinstance(error, ApplicationError)
    assert error.type == "TransferFailed"
    assert error.details[0]["compensations"] == ["reverse_credit", "refund"]
    assert store.balances()[alice] == 10_000
    assert store.balances()[bob] == 0
    log = [(r.key.split(":")[1], r.outcome) for r in store.requests(f"{transfer_id}:")]
    assert log == [("debit", "applied"), ("reverse_credit", "skipped"), ("refund", "applied")]


async def test_insufficient_funds_fails_without_moving_money(
    client: Client, store: SqliteStore
) -> None:
    alice, bob = unique("alice"), unique("bob")
    await seed(client, {alice: 100, bob: 0})
    with pytest.raises(WorkflowFailureError) as failure:
        await client.execute_workflow(
            TransferMoneyWorkflow.run, Transfer(alice, bob, 101), id=unique("t"), task_queue=SAGAS
        )
    error = failure.value.cause
    assert isinstance(error, ApplicationError)
    assert error.details[0]["failed_step"] == "debit"
    assert "InsufficientFunds" in error.details[0]["error"]
    assert error.details[0]["compensations"] == ["refund"]  # a no-op: nothing was debited
    assert store.balances()[alice] == 100


async def test_trip_is_cancelled_in_reverse_order(client: Client, store: SqliteStore) -> None:
    trip_id = unique("trip")
    trip = Trip(
        car="compact", hotel="harbour inn", flight="LH123", fail_times={"reserve_flight": 9}
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await client.execute_workflow(BookTripWorkflow.run, trip, id=trip_id, task_queue=SAGAS)
    error = failure.value.cause
    assert isinstance(error, ApplicationError)
    assert error.type == "BookingFailed"
    assert error.details[0]["failed_step"] == "reserve_flight"
    assert error.details[0]["compensations"] == ["cancel_flight", "cancel_hotel", "cancel_car"]
    log = [(r.kind, r.outcome) for r in store.requests(f"{trip_id}:")]
    assert log == [
        ("reserve_car", "applied"),
        ("reserve_hotel", "applied"),
        ("cancel_flight", "skipped"),  # the flight was never reserved
        ("cancel_hotel", "applied"),
        ("cancel_car", "applied"),
    ]


async def test_trip_books_all_three(client: Client) -> None:
    trip = Trip(car="compact", hotel="harbour inn", flight="LH123")
    result = await client.execute_workflow(
        BookTripWorkflow.run, trip, id=unique("trip"), task_queue=SAGAS
    )
    assert result.status == "BOOKED"
    assert sorted(result.confirmations) == ["reserve_car", "reserve_flight", "reserve_hotel"]


# --- money is conserved under faults --------------------------------------------

CHAOS_RATES = FaultRates(fail_before_rate=0.15, fail_after_rate=0.15)


@pytest.fixture
async def chaos(
    workflow_env: WorkflowEnvironment, config: Config, tmp_path: Path
) -> AsyncIterator[tuple[Client, SqliteStore]]:
    """Saga workers whose every money step randomly fails before or after committing.

    A namespace and store of their own keep the random faults away from the
    other tests.
    """
    chaos_config = on_namespace(
        config,
        CHAOS_NAMESPACE,
        store=dataclasses.replace(config.store, path=str(tmp_path / "chaos.db")),
        faults=FaultsConfig(
            enabled=True,
            activities={
                name: CHAOS_RATES for name in ("debit", "credit", "refund", "reverse_credit")
            },
        ),
    )
    async with serving(workflow_env, chaos_config, [SAGAS]) as client:
        yield client, SqliteStore(chaos_config.store.path)


async def test_money_is_conserved_under_faults(chaos: tuple[Client, SqliteStore]) -> None:
    client, store = chaos
    accounts = [f"acct-{i}" for i in range(8)]
    await seed(client, dict.fromkeys(accounts, 10_000))
    opening_total = sum(store.balances().values())

    rng = random.Random(7)
    # Deterministic faults on top of the random ones, so every path is taken.
    plans: list[dict[str, dict[str, int]]] = [
        {},
        {"fail_times": {"debit": 1, "credit": 2}},
        {"fail_after_commit_times": {"debit": 1, "credit": 1}},
        {"fail_times": {"credit": 10}},  # credit gives up: refund
        {"fail_after_commit_times": {"credit": 10}},  # credit applied, then gives up
    ]

    async def transfer(i: int) -> str:
        source, target = rng.sample(accounts, 2)
        amount = rng.randint(1, 4_000)
        plan = plans[i % len(plans)]
        transfer = Transfer(source, target, amount, **plan)
        return await transfer_outcome(client, transfer, f"chaos-transfer-{i}")

    # All at once: each transfer mostly waits on retry timers, not on CPU.
    outcomes = await asyncio.gather(*(transfer(i) for i in range(120)))

    balances = store.balances()
    report = store.report()
    print(
        f"transfers: {len(outcomes)}, completed: {outcomes.count('completed')}, "
        f"compensated: {outcomes.count('compensated')}, requested: {report.requested}, "
        f"applied: {report.applied}, deduplicated: {report.deduplicated}, "
        f"duplicated side effects: {report.duplicated}"
    )
    assert len(outcomes) == 120
    assert sum(balances.values()) == opening_total
    assert report.duplicated == 0
    assert report.unbalanced_accounts == []
    assert report.deduplicated > 0  # lost replies really happened, and were caught
    assert outcomes.count("completed") > 0
    assert outcomes.count("compensated") >= 120 // len(plans) * 2
    # No check that balances stay >= 0: reverse_credit takes back a credit that was applied
    # before its reply was lost, and the target may have spent that money meanwhile; undoing
    # it may overdraw the account, which is the saga's documented behaviour (made a rare flake).
