"""The stateful actors, driven only through signals, queries and updates."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError

from durable_temporal_workers.models import LOYALTY, MACHINES, LoyaltyAccount, MachineCarryOver
from durable_temporal_workers.workflows.loyalty import LoyaltyWorkflow
from durable_temporal_workers.workflows.machines import MachineOperatorWorkflow


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(10):
        while not await check():
            await asyncio.sleep(0.05)


async def state_is(handle: WorkflowHandle[Any, Any], expected: str) -> None:
    async def check() -> bool:
        return bool(await handle.query("getStatus") == expected)

    await eventually(check)


async def runs_in_chain(client: Client, handle: WorkflowHandle[Any, Any]) -> int:
    """Count the runs from the first one, following continue-as-new."""
    runs, run_id = 1, handle.first_execution_run_id or handle.run_id
    while True:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        last = history.events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return runs
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        runs += 1


async def test_machine_through_signals_and_queries(client: Client) -> None:
    machine = f"machine-{uuid.uuid4().hex[:8]}"
    # Started by name with a bare machine id, as outside clients do.
    handle = await client.start_workflow(
        "MachineOperatorWorkflow", machine, id=machine, task_queue=MACHINES
    )
    assert await handle.query("getStatus") == "DOWN"

    await handle.signal("tearDown")  # out of order: already DOWN
    await handle.signal("setUp")
    await state_is(handle, "UP")
    await handle.signal("setUp")  # repeated: already UP
    await handle.signal("setUp")
    await state_is(handle, "UP")
    await handle.signal("tearDown")
    await state_is(handle, "DOWN")
    await handle.signal("setUp")
    await handle.signal("complete")
    assert await handle.result() == "UP"

    history = await handle.fetch_history()
    activities = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    # Only the real transitions ran an activity.
    assert activities == ["BringUpMachine", "TearDownMachine", "BringUpMachine"]


async def test_machine_continues_as_new_without_losing_signals(client: Client) -> None:
    machine = f"machine-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        MachineOperatorWorkflow.run,
        args=[machine, MachineCarryOver(continue_as_new_after=3)],
        id=machine,
        task_queue=MACHINES,
    )
    # A burst: the first run handles three, then continues as new with the
    # rest still queued, while more arrive across the switch.
    for signal in ["setUp", "tearDown", "setUp", "tearDown", "setUp"]:
        await handle.signal(signal)
    await asyncio.sleep(0.3)
    for signal in ["tearDown", "setUp", "setUp"]:
        await handle.signal(signal)
    latest = client.get_workflow_handle(machine)
    await state_is(latest, "UP")
    await latest.signal("complete")
    assert await latest.result() == "UP"
    assert await runs_in_chain(client, handle) >= 3

    bring_ups = 0
    run_id = handle.first_execution_run_id or handle.run_id
    while run_id:
        run = client.get_workflow_handle(machine, run_id=run_id)
        history = await run.fetch_history()
        bring_ups += sum(
            1
            for e in history.events
            if e.activity_task_scheduled_event_attributes.activity_type.name == "BringUpMachine"
        )
        last = history.events[-1]
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    # Every signal was applied once, in order: 4 transitions up (one setUp repeated).
    assert bring_ups == 4


async def test_loyalty_crosses_gold_threshold(client: Client) -> None:
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        LoyaltyWorkflow.run,
        LoyaltyAccount(customer, points=7, gold_threshold=10),
        id=customer,
        task_queue=LOYALTY,
    )
    assert "3 more to Gold" in await handle.query("getLoyaltyMessage")
    first = await handle.execute_update("addLoyaltyPoint")  # no argument: one point
    assert first == f"{customer} has 8 points, 2 more to Gold."
    second = await handle.execute_update("addLoyaltyPoint", 1)
    assert "2 more" not in second
    crossing = await handle.execute_update("addLoyaltyPoint", 1)
    assert crossing == f"Congratulations {customer}, you reached Gold status with 10 points!"
    after = await handle.execute_update("addLoyaltyPoint", 1)
    assert after == f"{customer} is a Gold member with 11 points."
    assert await handle.query("getLoyaltyMessage") == after
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update("addLoyaltyPoint", 0)
    await handle.terminate("test done")


async def test_loyalty_continues_as_new_with_its_points(client: Client) -> None:
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        LoyaltyWorkflow.run,
        LoyaltyAccount(customer, continue_as_new_after=2),
        id=customer,
        task_queue=LOYALTY,
    )
    latest = client.get_workflow_handle(customer)
    messages = [await latest.execute_update("addLoyaltyPoint", 1) for _ in range(5)]
    assert messages[-1] == f"{customer} has 5 points, 5 more to Gold."
    assert await runs_in_chain(client, handle) >= 3
    await latest.terminate("test done")
