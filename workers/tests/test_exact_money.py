"""Exact money at the activities: a refusal is non-retryable, typed, names the account
and the amount, and changes nothing; in the SQLite and the PostgreSQL store alike."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from durable_temporal_workers.activities.orders import OrderActivities
from durable_temporal_workers.activities.sagas import SagaActivities
from durable_temporal_workers.config import Config, StoreConfig
from durable_temporal_workers.deps import ActivityDeps
from durable_temporal_workers.faults import FaultInjector
from durable_temporal_workers.models import (
    ORDERS,
    SAGAS,
    BalancesReport,
    Order,
    OrderItem,
    SeedAccounts,
    Transfer,
    TransferLeg,
)
from durable_temporal_workers.store import MAX_CENTS, SqlStore, open_store
from durable_temporal_workers.workflows.orders import OrderWorkflow
from durable_temporal_workers.workflows.sagas import (
    BalancesWorkflow,
    SeedAccountsWorkflow,
    TransferMoneyWorkflow,
)

from .conftest import POSTGRES_NAMESPACE, activity_attempts, on_namespace, serving
from .postgres import PostgresServer

# Two items whose total is 2^63 + 2^62: each fits 64 bits, their product sum does not.
HUGE_ITEMS = [OrderItem("GOLD-1", 3, 2**62)]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    if request.param == "sqlite":
        config = StoreConfig(path=str(tmp_path / "store.db"))
    else:
        pg: PostgresServer = request.getfixturevalue("postgres")
        config = StoreConfig(url=pg.url(pg.create_database()), password_file=str(pg.password_file))
    opened = open_store(config)
    assert isinstance(opened, SqlStore)
    yield opened
    opened.close()


def environment(activity_type: str, workflow_id: str = "wf-1") -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, activity_type=activity_type, workflow_id=workflow_id)
    return env


async def refusal(env: ActivityEnvironment, fn: Any, arg: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as refused:
        await env.run(fn, arg)
    assert refused.value.non_retryable
    return refused.value


def deps(store: SqlStore) -> ActivityDeps:
    return ActivityDeps(store=store, faults=FaultInjector({}))


# --- the activities on each store -------------------------------------------------------


async def test_a_credit_past_64_bits_is_a_business_error(store: SqlStore) -> None:
    store.seed_accounts({"rich": MAX_CENTS - 10}, "seed")
    sagas = SagaActivities(deps(store))
    error = await refusal(environment("credit"), sagas.credit, TransferLeg("rich", 11))
    assert error.type == "AmountOutOfRange"
    assert "'rich'" in error.message
    assert "11 cents" in error.message
    assert error.details == ({"account": "rich", "amount_cents": 11},)
    assert store.balances() == {"rich": MAX_CENTS - 10}
    assert store.check() == []
    # The largest balance there is still credits, exactly.
    await environment("credit", "wf-2").run(sagas.credit, TransferLeg("rich", 10))
    assert store.balances() == {"rich": MAX_CENTS}


@pytest.mark.parametrize(
    ("balances", "error_type", "named"),
    [
        ({"a": 100, "b": -1}, "NegativeAmount", {"account": "b", "amount_cents": -1}),
        ({"a": 100, "b": 2**63}, "AmountOutOfRange", {"account": "b", "amount_cents": 2**63}),
    ],
)
async def test_a_bad_seed_is_a_business_error(
    store: SqlStore, balances: dict[str, int], error_type: str, named: dict[str, Any]
) -> None:
    store.seed_accounts({"a": 5}, "seed")
    sagas = SagaActivities(deps(store))
    error = await refusal(environment("seed_accounts"), sagas.seed_accounts, SeedAccounts(balances))
    assert error.type == error_type
    assert error.details == (named,)
    assert store.balances() == {"a": 5}  # not even "a" was set


async def test_a_charge_past_64_bits_is_a_business_error(store: SqlStore) -> None:
    orders = OrderActivities(deps(store))
    order = Order("o-huge", HUGE_ITEMS, "1 Main Street")
    error = await refusal(environment("charge_payment"), orders.charge_payment, order)
    assert error.type == "AmountOutOfRange"
    assert str(3 * 2**62) in error.message
    assert store.requests("wf-1:")[0].outcome == "rejected"
    assert store.report().applied == 0


async def test_an_order_total_past_64_bits_is_an_invalid_order(store: SqlStore) -> None:
    orders = OrderActivities(deps(store))
    order = Order("o-huge", HUGE_ITEMS, "1 Main Street")
    error = await refusal(environment("validate_order"), orders.validate_order, order)
    assert error.type == "InvalidOrder"
    assert f"its total of {3 * 2**62} cents is past 2^63 - 1" in error.message
    # At the limit exactly it is a valid order.
    fits = Order("o-max", [OrderItem("GOLD-1", 1, MAX_CENTS)], "1 Main Street")
    await environment("validate_order").run(orders.validate_order, fits)


# --- through Temporal, on each store ---------------------------------------------------


@pytest.fixture
async def postgres_workers(
    workflow_env: WorkflowEnvironment, config: Config, postgres: PostgresServer
) -> AsyncIterator[Client]:
    """The orders and sagas queues served with a PostgreSQL store, on their own namespace."""
    host_config = on_namespace(
        config,
        POSTGRES_NAMESPACE,
        store=StoreConfig(
            url=postgres.url(postgres.create_database()),
            password_file=str(postgres.password_file),
        ),
    )
    async with serving(workflow_env, host_config, [ORDERS, SAGAS]) as client:
        yield client


@pytest.fixture(params=["sqlite", "postgres"])
def workers_client(request: pytest.FixtureRequest) -> Client:
    fixture = "client" if request.param == "sqlite" else "postgres_workers"
    client: Client = request.getfixturevalue(fixture)
    return client


async def balances(client: Client) -> BalancesReport:
    return await client.execute_workflow(
        BalancesWorkflow.run, id=f"balances-{uuid.uuid4().hex[:8]}", task_queue=SAGAS
    )


async def scheduled(handle: WorkflowHandle[Any, Any]) -> list[str]:
    history = await handle.fetch_history()
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def test_a_transfer_past_64_bits_is_undone_without_retries(workers_client: Client) -> None:
    client = workers_client
    tag = uuid.uuid4().hex[:8]
    rich, payer = f"rich-{tag}", f"payer-{tag}"
    await client.execute_workflow(
        SeedAccountsWorkflow.run,
        SeedAccounts({rich: MAX_CENTS - 10, payer: 100}),
        id=f"seed-{tag}",
        task_queue=SAGAS,
    )
    handle = await client.start_workflow(
        TransferMoneyWorkflow.run, Transfer(payer, rich, 11), id=f"t-{tag}", task_queue=SAGAS
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    assert isinstance(failed.value.cause, ApplicationError)
    assert failed.value.cause.type == "TransferFailed"
    assert "failed at credit: AmountOutOfRange: credit of 11 cents" in failed.value.cause.message
    assert f"'{rich}'" in failed.value.cause.message
    assert await activity_attempts(handle, "credit") == [1]
    assert await scheduled(handle) == ["debit", "credit", "reverse_credit", "refund"]
    # The balances report keeps working, exact, and the money is where it was.
    report = await balances(client)
    assert report.accounts[rich] == MAX_CENTS - 10
    assert report.accounts[payer] == 100
    assert report.side_effects.unbalanced_accounts == []
    await client.execute_workflow(
        SeedAccountsWorkflow.run,
        SeedAccounts({rich: 0, payer: 0}),
        id=f"unseed-{tag}",
        task_queue=SAGAS,
    )


async def test_an_order_past_64_bits_fails_at_validate_order(workers_client: Client) -> None:
    client = workers_client
    order_id = f"huge-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        OrderWorkflow.run,
        Order(order_id, HUGE_ITEMS, "1 Main Street"),
        id=order_id,
        task_queue=ORDERS,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "InvalidOrder"
    assert "past 2^63 - 1" in cause.cause.message
    assert await activity_attempts(handle, "validate_order") == [1]
    assert await scheduled(handle) == ["validate_order"]
