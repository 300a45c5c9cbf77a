"""Fault injection is a test tool: refused unless the workers' config turns it on."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from durable_temporal_workers.config import (
    Config,
    ConfigError,
    FaultsConfig,
    load_config,
)
from durable_temporal_workers.faults import MAX_PLANNED_FAILURES_WITHOUT_RETRY_LIMIT
from durable_temporal_workers.models import ORDERS, SAGAS, Order, OrderItem, SeedAccounts, Transfer
from durable_temporal_workers.workflows.orders import OrderWorkflow
from durable_temporal_workers.workflows.sagas import SeedAccountsWorkflow, TransferMoneyWorkflow

from .conftest import NO_FAULTS_NAMESPACE, activity_attempts, on_namespace, serving


@pytest.fixture(scope="module")
async def production_client(
    workflow_env: WorkflowEnvironment, config: Config, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Client]:
    """Workers with the shipped default, ``faults.enabled: false``."""
    off = on_namespace(
        config,
        NO_FAULTS_NAMESPACE,
        store=dataclasses.replace(
            config.store, path=str(tmp_path_factory.mktemp("nofaults") / "store.db")
        ),
        faults=FaultsConfig(),
    )
    assert not off.faults.enabled
    async with serving(workflow_env, off) as client:
        yield client


def order(field: str | None = None) -> Order:
    """A valid order; with ``field``, one that asks charge_payment to fail once."""
    faults = {field: {"charge_payment": 1}} if field else {}
    return Order(
        f"order-{uuid.uuid4().hex[:8]}",
        [OrderItem("BOOK-1", 1, 500)],
        "1 Main St",
        fail_times=faults.get("fail_times", {}),
        fail_after_commit_times=faults.get("fail_after_commit_times", {}),
    )


@pytest.mark.parametrize("field", ["fail_times", "fail_after_commit_times"])
async def test_a_fault_plan_is_refused_before_any_activity(
    production_client: Client, field: str
) -> None:
    bad = order(field)
    handle = await production_client.start_workflow(
        OrderWorkflow.run, bad, id=bad.order_id, task_queue=ORDERS
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "InvalidInput"
    assert cause.non_retryable
    assert field in str(cause)
    assert "faults.enabled" in str(cause)
    history = await handle.fetch_history()
    assert not [
        e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def test_a_plain_order_still_completes(production_client: Client) -> None:
    plain = order()
    result = await production_client.execute_workflow(
        OrderWorkflow.run, plain, id=plain.order_id, task_queue=ORDERS
    )
    assert result.status == "COMPLETED"


async def test_a_transfer_with_faults_moves_no_money(production_client: Client) -> None:
    a, b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    seeded = await production_client.execute_workflow(
        SeedAccountsWorkflow.run, SeedAccounts({a: 100, b: 0}), id=f"seed-{a}", task_queue=SAGAS
    )
    transfer = Transfer(a, b, 60, fail_after_commit_times={"credit": 1})
    with pytest.raises(WorkflowFailureError):
        await production_client.execute_workflow(
            TransferMoneyWorkflow.run, transfer, id=f"t-{a}", task_queue=SAGAS
        )
    after = await production_client.execute_workflow(
        SeedAccountsWorkflow.run, SeedAccounts({}), id=f"read-{a}", task_queue=SAGAS
    )
    assert {k: after[k] for k in (a, b)} == {k: seeded[k] for k in (a, b)}


async def test_a_compensation_cannot_be_made_to_fail_for_ever(client: Client) -> None:
    """Even where injection is on, a refund retried without limit fails only a few times."""
    a, b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    await client.execute_workflow(
        SeedAccountsWorkflow.run, SeedAccounts({a: 100, b: 0}), id=f"seed-{a}", task_queue=SAGAS
    )
    transfer = Transfer(a, b, 60, fail_times={"credit": 100, "refund": 1_000_000})
    handle = await client.start_workflow(
        TransferMoneyWorkflow.run, transfer, id=f"t-{a}", task_queue=SAGAS
    )
    with pytest.raises(WorkflowFailureError) as failure:
        await handle.result()
    assert isinstance(failure.value.cause, ApplicationError)
    assert failure.value.cause.type == "TransferFailed"
    assert await activity_attempts(handle, "refund") == [
        MAX_PLANNED_FAILURES_WITHOUT_RETRY_LIMIT + 1
    ]
    balances = await client.execute_workflow(
        SeedAccountsWorkflow.run, SeedAccounts({}), id=f"read-{a}", task_queue=SAGAS
    )
    assert (balances[a], balances[b]) == (100, 0)


def test_random_faults_need_the_switch(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("faults: {activities: {credit: {fail_before_rate: 0.5}}}\n")
    with pytest.raises(ConfigError, match=r"faults\.activities: .*faults\.enabled: true"):
        load_config(path, env={})
    path.write_text("faults: {enabled: true, activities: {credit: {fail_before_rate: 0.5}}}\n")
    assert load_config(path, env={}).faults.enabled


def test_the_switch_is_off_by_default(tmp_path: Path) -> None:
    assert not load_config(None, env={}).faults.enabled
    assert load_config(None, env={"TEMPORAL_WORKERS_FAULTS_ENABLED": "true"}).faults.enabled
