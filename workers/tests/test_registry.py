"""Queue wiring: checked at start-up, and followed when workflows call activities."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from durable_temporal_workers.catalog import load_registry
from durable_temporal_workers.cli import main
from durable_temporal_workers.config import Config, MetricsConfig
from durable_temporal_workers.registry import Registry, RegistryError, on_queue
from durable_temporal_workers.worker import run_workers

# A small registry of its own: one workflow calls an activity on another queue.
wiring = Registry()


@wiring.activity(queue="wiring-a")
async def shout(text: str) -> str:
    return text.upper()


@wiring.activity(queue="wiring-b")
async def exclaim(text: str) -> str:
    return f"{text}!"


@wiring.workflow(queue="wiring-a", activities=[shout, on_queue("wiring-b", exclaim)])
class CrossQueueWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        loud = await wiring.execute(shout, text)
        return await wiring.execute(exclaim, loud)


@wiring.workflow(queue="wiring-a", activities=[shout])
class UndeclaredCallWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await wiring.execute(exclaim, text)  # not in activities=[...]


# Wrong wirings, one registry each.
unnamed, misnamed, unregistered = Registry(), Registry(), Registry()


@unnamed.activity(queue="billing")
async def bill(amount: int) -> int:
    return amount


@unnamed.workflow(queue="shop", activities=[bill])  # bill is on "billing"
class UnnamedQueueShop:
    @workflow.run
    async def run(self) -> int:
        return await unnamed.execute(bill, 1)


@misnamed.activity(queue="billing")
async def invoice(amount: int) -> int:
    return amount


@misnamed.workflow(queue="shop", activities=[on_queue("invoices", invoice)])
class MisnamedQueueShop:
    @workflow.run
    async def run(self) -> int:
        return await misnamed.execute(invoice, 1)


@activity.defn
async def forgotten() -> None:
    return None


@unregistered.workflow(queue="shop", activities=[forgotten])
class ForgottenActivityShop:
    @workflow.run
    async def run(self) -> None:
        await unregistered.execute(forgotten)


class AnotherShop:
    @workflow.run
    async def run(self) -> None:
        return None


def test_the_package_registry() -> None:
    registry = load_registry()
    assert registry.queues() == ["loyalty", "orders", "sagas", "stateful-machines"]
    plans = {plan.queue: plan for plan in registry.plan()}
    orders = plans["orders"]
    assert [w.name for w in orders.workflows] == ["OrderWorkflow"]
    assert [a.name for a in orders.activities] == [
        "cancel_shipment",
        "charge_payment",
        "refund_payment",
        "send_notification",
        "ship_order",
        "validate_order",
    ]
    machines = plans["stateful-machines"]
    assert [w.name for w in machines.workflows] == ["MachineOperatorWorkflow"]
    assert [a.name for a in machines.activities] == ["BringUpMachine", "TearDownMachine"]
    assert [w.name for w in plans["loyalty"].workflows] == ["LoyaltyWorkflow"]
    assert plans["loyalty"].activities == ()
    assert {w.name for w in plans["sagas"].workflows} == {
        "TransferMoneyWorkflow",
        "BookTripWorkflow",
        "SeedAccountsWorkflow",
        "BalancesWorkflow",
    }
    assert [p.queue for p in registry.plan(["orders", "orders"])] == ["orders"]


def test_unknown_queue() -> None:
    with pytest.raises(RegistryError, match="unknown task queue 'nope'; registered queues: "):
        load_registry().plan(["orders", "nope"])


def test_activity_on_another_queue_must_be_named() -> None:
    with pytest.raises(RegistryError) as error:
        unnamed.plan(["shop"])
    assert "workflow UnnamedQueueShop (queue 'shop') calls activity bill" in str(error.value)
    assert "registered on queue 'billing': declare it as on_queue('billing', ...)" in str(
        error.value
    )


def test_named_queue_must_match_the_registration() -> None:
    with pytest.raises(RegistryError, match="on queue 'invoices', but it is registered on"):
        misnamed.plan()


def test_activity_that_is_not_registered() -> None:
    with pytest.raises(RegistryError, match="calls forgotten, which is not registered"):
        unregistered.plan()


def test_duplicates_are_refused() -> None:
    with pytest.raises(RegistryError, match="workflow 'UnnamedQueueShop' registered twice"):
        unnamed.workflow(queue="other", name="UnnamedQueueShop")(AnotherShop)


def test_serve_refuses_an_unknown_queue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--queue", "nope"]) == 2
    assert "unknown task queue 'nope'" in capsys.readouterr().err


async def test_wiring_errors_come_before_connecting(config: Config) -> None:
    unreachable = dataclasses.replace(
        config, temporal=dataclasses.replace(config.temporal, address="127.0.0.1:1")
    )
    async with asyncio.timeout(2):  # no connection attempts, no retries
        with pytest.raises(RegistryError, match="on_queue"):
            await run_workers(unreachable, unnamed, None, asyncio.Event())


async def test_calls_follow_the_registered_queues(config: Config, client: Client) -> None:
    # Unsandboxed, because the sandbox would re-import this test module.
    local = dataclasses.replace(
        config,
        worker=dataclasses.replace(config.worker, sandbox=False),
        metrics=MetricsConfig(bind_address=None),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_workers(local, wiring, None, stop))
    try:
        result = await client.execute_workflow(
            CrossQueueWorkflow.run, "hi", id=f"wiring-{uuid.uuid4().hex[:8]}", task_queue="wiring-a"
        )
        assert result == "HI!"

        # An undeclared call fails the workflow task (retried until the code is
        # fixed), not the workflow.
        handle = await client.start_workflow(
            UndeclaredCallWorkflow.run,
            "hi",
            id=f"wiring-{uuid.uuid4().hex[:8]}",
            task_queue="wiring-a",
        )

        async def task_failure() -> str:
            while True:
                async for event in handle.fetch_history_events():
                    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                        return event.workflow_task_failed_event_attributes.failure.message
                await asyncio.sleep(0.1)

        async with asyncio.timeout(10):
            message = await task_failure()
        assert "UndeclaredCallWorkflow calls exclaim without declaring it" in message
        await handle.terminate("test done")
    finally:
        stop.set()
        assert await task == 0
