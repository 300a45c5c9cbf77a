"""Machine activities. Names are fixed: outside tools schedule them by name."""

from __future__ import annotations

from temporalio import activity

from durable_temporal_workers.models import MACHINE_DOWN, MACHINE_UP, MACHINES, MachineState
from durable_temporal_workers.registry import registry


@registry.activity(queue=MACHINES, name="BringUpMachine")
async def bring_up_machine(machine_id: str) -> MachineState:
    # Stands in for real provisioning, which must be idempotent too: the
    # activity may run again after a worker crash.
    activity.logger.info("bringing up machine %s", machine_id)
    return MACHINE_UP


@registry.activity(queue=MACHINES, name="TearDownMachine")
async def tear_down_machine(machine_id: str) -> MachineState:
    activity.logger.info("tearing down machine %s", machine_id)
    return MACHINE_DOWN
