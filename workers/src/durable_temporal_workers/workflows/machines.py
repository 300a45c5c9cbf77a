"""MachineOperatorWorkflow: one long-lived workflow per machine, driven by signals.

Activity options are not written here: bring_up_machine and tear_down_machine
get the timeouts and retry policy that the worker's config gives them (see
``workflows/__init__.py``).
"""

from __future__ import annotations

from collections import deque

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_temporal_workers.activities.machines import bring_up_machine, tear_down_machine
    from durable_temporal_workers.models import (
        COMPLETE,
        MACHINE_DOWN,
        MACHINE_UP,
        MACHINES,
        SET_UP,
        TEAR_DOWN,
        MachineCarryOver,
        MachineSignal,
        MachineState,
    )
    from durable_temporal_workers.registry import registry


@registry.workflow(queue=MACHINES, activities=[bring_up_machine, tear_down_machine])
class MachineOperatorWorkflow:
    """State machine DOWN <-> UP, changed only through signals.

    Signal handlers only queue the request; the main loop applies them one at
    a time, in arrival order, so two transitions never run concurrently.
    Repeated or out-of-order signals (setUp when UP) are no-ops.

    The input is the machine id. The optional second argument carries state
    (and still-queued signals) across continue-as-new, which happens after
    ``continue_as_new_after`` signals in one run or when the server suggests it.

    Both are decoded strictly: an unknown state or signal in the carry-over
    would sit in the workflow for good, so it fails the workflow at once with
    a non-retryable ``InvalidInput`` instead (why: see ``workflows/__init__.py``).
    Signals carry no argument, so there is nothing to decode in them.
    """

    @workflow.init
    def __init__(self, machine_id: str, carry: MachineCarryOver | None = None) -> None:
        self._carry = carry or MachineCarryOver()
        self._state: MachineState = self._carry.state
        self._pending: deque[MachineSignal] = deque(self._carry.pending_signals)
        self._handled = 0

    @workflow.run
    async def run(self, machine_id: str, carry: MachineCarryOver | None = None) -> str:
        while True:
            await workflow.wait_condition(lambda: bool(self._pending) or self._history_full())
            while self._pending and not self._history_full():
                signal = self._pending.popleft()
                self._handled += 1
                if signal == COMPLETE:
                    workflow.logger.info("machine %s complete: %s", machine_id, self._state)
                    return self._state
                await self._apply(machine_id, signal)
            if self._history_full():
                # Handlers only queue, but wait for them anyway: a new run
                # must not start while one is still running in this run.
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    args=[
                        machine_id,
                        MachineCarryOver(
                            state=self._state,
                            pending_signals=list(self._pending),
                            continue_as_new_after=self._carry.continue_as_new_after,
                            run_number=self._carry.run_number + 1,
                        ),
                    ]
                )

    @workflow.signal(name=SET_UP)
    def set_up(self) -> None:
        self._pending.append(SET_UP)

    @workflow.signal(name=TEAR_DOWN)
    def tear_down(self) -> None:
        self._pending.append(TEAR_DOWN)

    @workflow.signal(name=COMPLETE)
    def complete(self) -> None:
        self._pending.append(COMPLETE)

    @workflow.query(name="getStatus")
    def get_status(self) -> str:
        return self._state

    async def _apply(self, machine_id: str, signal: MachineSignal) -> None:
        # Timeouts and retries: the worker's config for each activity name.
        if signal == SET_UP and self._state == MACHINE_DOWN:
            self._state = await registry.execute(bring_up_machine, machine_id)
        elif signal == TEAR_DOWN and self._state == MACHINE_UP:
            self._state = await registry.execute(tear_down_machine, machine_id)
        else:
            workflow.logger.info("machine %s is %s: %s ignored", machine_id, self._state, signal)

    def _history_full(self) -> bool:
        limit = self._carry.continue_as_new_after  # at least 1, checked with the input
        return self._handled >= limit or workflow.info().is_continue_as_new_suggested()
