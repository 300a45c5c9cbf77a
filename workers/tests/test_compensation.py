"""Every saga undoes exactly the steps that ran, whether a step fails or the workflow is cancelled.

Each test holds or fails one step in turn, before its effect committed or
after (a lost reply), then checks the workflow's status, the activities its
history scheduled, and the store: every effect the workflow applied was
applied once and undone once, and balances are back where they started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypedDict

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment

from durable_temporal_workers.config import Config, RetryConfig
from durable_temporal_workers.models import (
    ORDERS,
    SAGAS,
    Order,
    OrderItem,
    SeedAccounts,
    Transfer,
    Trip,
)
from durable_temporal_workers.store import SqliteStore
from durable_temporal_workers.workflows.orders import OrderWorkflow
from durable_temporal_workers.workflows.sagas import (
    BookTripWorkflow,
    SeedAccountsWorkflow,
    TransferMoneyWorkflow,
)

from .conftest import HELD_NAMESPACE, on_namespace, serving

# Kinds of effect that cannot be taken back: a message once sent stays sent.
IRREVERSIBLE = {"notification"}
# A planned failure count no step reaches the end of while a test waits.
FOR_EVER = 1000


@dataclasses.dataclass(frozen=True)
class Saga:
    """A workflow under test: how to start it, its steps, and its undo activities."""

    name: str
    queue: str
    steps: tuple[str, ...]
    undo: dict[str, str]  # step -> its compensation
    error_type: str
    start: Callable[[dict[str, dict[str, int]], str], Any]


class _Faults(TypedDict):
    fail_times: dict[str, int]
    fail_after_commit_times: dict[str, int]


def _split(faults: dict[str, dict[str, int]]) -> _Faults:
    return {
        "fail_times": faults.get("fail_times", {}),
        "fail_after_commit_times": faults.get("fail_after_commit_times", {}),
    }


def _order(faults: dict[str, dict[str, int]], wid: str) -> tuple[Any, Order]:
    order = Order(wid, [OrderItem("BOOK-1", 2, 1250)], "1 Main Street", **_split(faults))
    return OrderWorkflow.run, order


def _transfer(faults: dict[str, dict[str, int]], wid: str) -> tuple[Any, Transfer]:
    return TransferMoneyWorkflow.run, Transfer(f"{wid}-from", f"{wid}-to", 700, **_split(faults))


def _trip(faults: dict[str, dict[str, int]], wid: str) -> tuple[Any, Trip]:
    return BookTripWorkflow.run, Trip("car-1", "hotel-2", "flight-3", **_split(faults))


ORDER = Saga(
    "order",
    ORDERS,
    ("charge_payment", "ship_order", "send_notification"),
    {"charge_payment": "refund_payment", "ship_order": "cancel_shipment"},
    "OrderFailed",
    _order,
)
TRANSFER = Saga(
    "transfer",
    SAGAS,
    ("debit", "credit"),
    {"debit": "refund", "credit": "reverse_credit"},
    "TransferFailed",
    _transfer,
)
TRIP = Saga(
    "trip",
    SAGAS,
    ("reserve_car", "reserve_hotel", "reserve_flight"),
    {
        "reserve_car": "cancel_car",
        "reserve_hotel": "cancel_hotel",
        "reserve_flight": "cancel_flight",
    },
    "BookingFailed",
    _trip,
)
CASES = [
    pytest.param(saga, step, when, id=f"{saga.name}-{step}-{when}")
    for saga in (ORDER, TRANSFER, TRIP)
    for step in saga.steps
    for when in ("before-commit", "after-commit")
]


def plan(step: str, when: str, times: int) -> dict[str, dict[str, int]]:
    field = "fail_times" if when == "before-commit" else "fail_after_commit_times"
    return {field: {step: times}}


def expected_activities(saga: Saga, step: str) -> list[str]:
    """What the history must schedule: the steps up to ``step``, then their undo, newest first."""
    ran = list(saga.steps[: saga.steps.index(step) + 1])
    undo = [saga.undo[s] for s in reversed(ran) if s in saga.undo]
    validate = ["validate_order"] if saga is ORDER else []
    return validate + ran + undo


async def scheduled_activities(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


def assert_everything_undone(store_path: str, workflow_id: str) -> None:
    """Each effect of the workflow applied once and reverted once; nothing else left."""
    with sqlite3.connect(store_path) as db:
        entries = db.execute(
            "SELECT key, kind, amount_cents, reverts FROM ledger WHERE substr(key, 1, ?) = ?",
            (len(workflow_id) + 1, f"{workflow_id}:"),
        ).fetchall()
        applied = db.execute(
            "SELECT key, COUNT(*) FROM requests WHERE substr(key, 1, ?) = ?"
            " AND outcome = 'applied' GROUP BY key HAVING COUNT(*) > 1",
            (len(workflow_id) + 1, f"{workflow_id}:"),
        ).fetchall()
    assert applied == [], f"effects applied more than once: {applied}"
    voided = {key for key, kind, _, _ in entries if kind == "void"}
    effects = [
        key
        for key, kind, _, reverts in entries
        if reverts is None and kind not in IRREVERSIBLE and key not in voided
    ]
    reverted = [reverts for _, _, _, reverts in entries if reverts is not None]
    for key in effects:
        assert reverted.count(key) == 1, f"{key} undone {reverted.count(key)} times: {entries}"
    assert sorted(set(reverted)) == sorted(reverted), entries
    reversible = [amount for _, kind, amount, _ in entries if kind not in IRREVERSIBLE]
    assert sum(reversible) == 0, entries


async def seed_accounts(client: Client, saga: Saga, wid: str, queue: str = SAGAS) -> dict[str, int]:
    if saga is not TRANSFER:
        return {}
    balances = {f"{wid}-from": 1_000, f"{wid}-to": 50}
    await client.execute_workflow(
        SeedAccountsWorkflow.run, SeedAccounts(balances), id=f"seed-{wid}", task_queue=queue
    )
    return balances


def balances_of(store_path: str, accounts: dict[str, int]) -> dict[str, int]:
    found = SqliteStore(store_path).balances()
    return {account: found[account] for account in accounts}


@pytest.fixture(scope="module")
async def held(
    workflow_env: WorkflowEnvironment, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Client, str]]:
    """Workers whose failing steps retry for a long time, so a test can cancel at a step."""
    store_path = str(tmp_path_factory.mktemp("held") / "held.db")
    held_config = on_namespace(
        config,
        HELD_NAMESPACE,
        store=dataclasses.replace(config.store, path=store_path),
        retries=dataclasses.replace(
            config.retries,
            default=RetryConfig(
                maximum_attempts=FOR_EVER,
                initial_interval_seconds=0.1,
                backoff_coefficient=2.0,
                maximum_interval_seconds=0.3,
            ),
        ),
    )
    async with serving(workflow_env, held_config) as client:
        yield client, store_path


async def wait_until_retrying(handle: WorkflowHandle[Any, Any], activity_type: str) -> None:
    """Until ``activity_type`` is pending on its second attempt or later: the step is held there."""
    for _ in range(400):
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if pending.activity_type.name == activity_type and pending.attempt >= 2:
                return
        await asyncio.sleep(0.05)
    pytest.fail(f"{activity_type} never retried")


@pytest.mark.parametrize(("saga", "step", "when"), CASES)
async def test_cancel_at_a_step_undoes_what_ran(
    held: tuple[Client, str], saga: Saga, step: str, when: str
) -> None:
    client, store_path = held
    wid = f"cancel-{saga.name}-{step}-{when}-{uuid.uuid4().hex[:6]}"
    opening = await seed_accounts(client, saga, wid)
    run, arg = saga.start(plan(step, when, FOR_EVER), wid)
    handle = await client.start_workflow(run, arg, id=wid, task_queue=saga.queue)
    await wait_until_retrying(handle, step)

    await handle.cancel()

    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    assert await scheduled_activities(handle) == expected_activities(saga, step)
    assert_everything_undone(store_path, wid)
    assert balances_of(store_path, opening) == opening


@pytest.mark.parametrize(("saga", "step", "when"), CASES)
async def test_failure_at_a_step_undoes_what_ran(
    client: Client, config: Config, saga: Saga, step: str, when: str
) -> None:
    wid = f"fail-{saga.name}-{step}-{when}-{uuid.uuid4().hex[:6]}"
    opening = await seed_accounts(client, saga, wid)
    # More planned failures than the suite's workers retry: the step gives up.
    run, arg = saga.start(plan(step, when, 10), wid)
    handle = await client.start_workflow(run, arg, id=wid, task_queue=saga.queue)

    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == saga.error_type
    assert step in str(cause)
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    assert await scheduled_activities(handle) == expected_activities(saga, step)
    assert config.store.path is not None
    assert_everything_undone(config.store.path, wid)
    assert balances_of(config.store.path, opening) == opening


async def cancelled(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """Cancels the workflow, checks that it ends cancelled, returns the activities it scheduled."""
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, CancelledError)
    return await scheduled_activities(handle)


async def test_cancel_while_shipping_stops_the_shipment_and_refunds(
    held: tuple[Client, str],
) -> None:
    """A long step hears the cancel through its heartbeats and stops; the charge is refunded."""
    client, store_path = held
    wid = f"cancel-shipping-{uuid.uuid4().hex[:6]}"
    order = Order(wid, [OrderItem("BOOK-1", 1, 900)], "1 Main Street", ship_delay_seconds=60)
    handle = await client.start_workflow(OrderWorkflow.run, order, id=wid, task_queue=ORDERS)
    for _ in range(400):
        pending = (await handle.describe()).raw_description.pending_activities
        if any(p.activity_type.name == "ship_order" and p.state == 2 for p in pending):  # STARTED
            break
        await asyncio.sleep(0.05)

    assert await cancelled(handle) == [
        "validate_order",
        "charge_payment",
        "ship_order",
        "cancel_shipment",
        "refund_payment",
    ]
    assert_everything_undone(store_path, wid)
    with sqlite3.connect(store_path) as db:
        shipments = db.execute(
            "SELECT kind FROM ledger WHERE key = ?", (f"{wid}:ship_order",)
        ).fetchall()
    # The cancel found no shipment yet and voided its key: the packing never ships later.
    assert shipments == [("void",)]


async def test_activities_are_scheduled_with_a_heartbeat_timeout(
    client: Client, config: Config
) -> None:
    order = Order(f"hb-{uuid.uuid4().hex[:6]}", [OrderItem("BOOK-1", 1, 900)], "1 Main Street")
    handle = await client.start_workflow(
        OrderWorkflow.run, order, id=order.order_id, task_queue=ORDERS
    )
    await handle.result()
    history = await handle.fetch_history()
    timeouts = {
        event.activity_task_scheduled_event_attributes.heartbeat_timeout.ToSeconds()
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert timeouts == {int(config.timeouts.activity_heartbeat_seconds or 0)}
    assert timeouts != {0}


async def test_cancel_during_the_hold_refunds_and_ships_nothing(held: tuple[Client, str]) -> None:
    """Cancelled on its dispatch timer, an order refunds the charge and ships nothing."""
    client, store_path = held
    wid = f"cancel-hold-{uuid.uuid4().hex[:6]}"
    order = Order(wid, [OrderItem("BOOK-1", 1, 900)], "1 Main Street", hold_seconds=3600)
    handle = await client.start_workflow(OrderWorkflow.run, order, id=wid, task_queue=ORDERS)
    for _ in range(400):
        events = [event.event_type async for event in handle.fetch_history_events()]
        if EventType.EVENT_TYPE_TIMER_STARTED in events:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the order never started its dispatch timer")

    assert await cancelled(handle) == ["validate_order", "charge_payment", "refund_payment"]
    assert_everything_undone(store_path, wid)
