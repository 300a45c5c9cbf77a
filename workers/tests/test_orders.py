"""OrderWorkflow against a real server and the in-process workers."""

from __future__ import annotations

import uuid

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

from durable_temporal_workers.models import ORDERS, Order, OrderItem, OrderResult
from durable_temporal_workers.store import SqliteStore
from durable_temporal_workers.workflows.orders import OrderWorkflow

from .conftest import activity_attempts


def new_order(**changes: object) -> Order:
    fields: dict[str, object] = {
        "order_id": f"order-{uuid.uuid4().hex[:8]}",
        "items": [OrderItem("BOOK-1", 2, 1250), OrderItem("PEN-7", 1, 199)],
        "address": "1 Main Street, Springfield",
        "email": "buyer@example.com",
    }
    fields.update(changes)
    return Order(**fields)  # type: ignore[arg-type]


async def test_happy_path(client: Client, store: SqliteStore) -> None:
    order = new_order()
    result = await client.execute_workflow(
        OrderWorkflow.run, order, id=order.order_id, task_queue=ORDERS
    )
    assert isinstance(result, OrderResult)
    assert result.status == "COMPLETED"
    assert result.amount_cents == 2 * 1250 + 199
    assert result.tracking_number.startswith("TRK-")
    assert result.charge_id.startswith("CH-")
    kinds = [r.kind for r in store.requests(f"{order.order_id}:")]
    assert kinds == ["charge", "shipment", "notification"]


async def test_transient_failure_is_retried(client: Client, store: SqliteStore) -> None:
    order = new_order(fail_times={"charge_payment": 2})
    handle = await client.start_workflow(
        OrderWorkflow.run, order, id=order.order_id, task_queue=ORDERS
    )
    result = await handle.result()
    assert result.status == "COMPLETED"
    assert await activity_attempts(handle, "charge_payment") == [3]
    assert await activity_attempts(handle, "ship_order") == [1]
    # The two failed attempts never reached the store: one charge.
    charges = [r.outcome for r in store.requests(f"{order.order_id}:charge_payment")]
    assert charges == ["applied"]


async def test_lost_reply_does_not_charge_twice(client: Client, store: SqliteStore) -> None:
    order = new_order(fail_after_commit_times={"charge_payment": 1})
    handle = await client.start_workflow(
        OrderWorkflow.run, order, id=order.order_id, task_queue=ORDERS
    )
    result = await handle.result()
    assert await activity_attempts(handle, "charge_payment") == [2]
    charges = store.requests(f"{order.order_id}:charge_payment")
    assert [r.outcome for r in charges] == ["applied", "duplicate"]
    assert result.amount_cents == order.total_cents


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"items": []}, "no items"),
        ({"items": [OrderItem("X", 1, -5)]}, "negative price"),
        ({"address": None}, "address is missing"),
    ],
)
async def test_invalid_order_fails_at_once(
    client: Client, changes: dict[str, object], reason: str
) -> None:
    order = new_order(**changes)
    handle = await client.start_workflow(
        OrderWorkflow.run, order, id=order.order_id, task_queue=ORDERS
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    activity_error = failure.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.retry_state == RetryState.NON_RETRYABLE_FAILURE
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidOrder"
    assert reason in cause.message
    assert await activity_attempts(handle, "validate_order") == [1]
    assert await activity_attempts(handle, "charge_payment") == []


async def test_a_held_order_ships_after_its_durable_timer(
    client: Client, store: SqliteStore
) -> None:
    order = new_order(hold_seconds=2)
    handle = await client.start_workflow(
        OrderWorkflow.run, order, id=order.order_id, task_queue=ORDERS
    )
    result = await handle.result()
    assert result.status == "COMPLETED"
    events = [event async for event in handle.fetch_history_events()]
    timers = [
        e.timer_started_event_attributes
        for e in events
        if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
    ]
    assert [timer.start_to_fire_timeout.ToSeconds() for timer in timers] == [2]
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    fired = next(
        i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED
    )
    shipped = next(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "ship_order"
    )
    charged = next(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "charge_payment"
    )
    assert charged < fired < shipped, scheduled
    assert [r.kind for r in store.requests(f"{order.order_id}:")] == [
        "charge",
        "shipment",
        "notification",
    ]
