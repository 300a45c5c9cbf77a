"""How fast an activity on a killed worker runs again on another worker.

Two worker processes serve the orders queue in a namespace of their own, on
the bench's dev server. Each round starts an order whose ship_order takes a
minute, SIGKILLs the worker running it, and times how long until the
server has handed the activity to the other worker. What bounds it is the
activity's heartbeat timeout (the workers' timeouts.activity_heartbeat_seconds)
plus the retry's first interval.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import PendingActivityState, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    RegisterNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

NAMESPACE = "bench-recovery"
QUEUE = "orders"
CONFIG = """\
temporal: {{address: "{address}", namespace: {namespace}}}
metrics: {{bind_address: null}}
store: {{path: "{store}"}}
worker: {{drain_timeout_seconds: 1}}
"""


@dataclass
class Workers:
    """The two worker processes, restarted after each kill."""

    config: Path
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL")}
        env["TEMPORAL_WORKERS_CONFIG"] = str(self.config)
        log = (self.logs / f"recovery-worker-{name}.log").open("ab")
        command = [str(Path(sys.executable).parent / "temporal-workers"), "serve", "--queue", QUEUE]
        self.processes[name] = subprocess.Popen(command, env=env, stdout=log, stderr=log)

    def by_pid(self, pid: int) -> str | None:
        return next((n for n, p in self.processes.items() if p.pid == pid), None)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


async def _register(client: Client) -> None:
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=NAMESPACE, workflow_execution_retention_period=Duration(seconds=86400)
            )
        )
    except RPCError as err:
        if err.status != RPCStatusCode.ALREADY_EXISTS:
            raise


async def _pollers(client: Client) -> set[int]:
    """PIDs of the processes polling the queue for activities (identity is pid@host)."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=NAMESPACE,
            task_queue=TaskQueue(name=QUEUE),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return {int(p.identity.split("@", 1)[0]) for p in response.pollers if "@" in p.identity}


async def _until(check: Any, what: str, limit_s: float = 120.0) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(f"recovery bench: {what} after {limit_s:.0f} s")


async def measure(address: str, rounds: int, workdir: Path) -> dict[str, Any]:
    client = await Client.connect(address)
    await _register(client)
    await asyncio.sleep(1)  # the dev server makes a new namespace known within a second
    ns_client = await Client.connect(address, namespace=NAMESPACE)
    config = workdir / "recovery-workers.yaml"
    config.write_text(
        CONFIG.format(address=address, namespace=NAMESPACE, store=workdir / "recovery.db")
    )
    workers = Workers(config, workdir)
    try:
        for name in ("a", "b"):
            workers.start(name)
        seconds = [await _round(ns_client, workers, n) for n in range(rounds)]
    finally:
        workers.stop()
    return {
        "rounds": len(seconds),
        "seconds": [round(s, 2) for s in seconds],
        "p50_s": round(statistics.median(seconds), 2),
        "max_s": round(max(seconds), 2),
    }


async def _round(client: Client, workers: Workers, n: int) -> float:
    """One kill: seconds from SIGKILL until ship_order has started again on the other worker."""
    alive = {p.pid for p in workers.processes.values()}
    # The killed worker's stale poller may linger in the list: wait for both live ones.
    await _until(lambda: _has(client, alive), "both workers polling")
    order_id = f"recovery-{n}-{uuid.uuid4().hex[:6]}"
    order = {
        "order_id": order_id,
        "items": [{"sku": "BENCH-1", "quantity": 1, "unit_price_cents": 100}],
        "address": "1 Bench Street",
        "ship_delay_seconds": 60,
    }
    handle = await client.start_workflow("OrderWorkflow", order, id=order_id, task_queue=QUEUE)

    async def shipping(min_attempt: int = 1) -> int | None:
        """The PID of the worker running ship_order at ``min_attempt`` or later."""
        description = await handle.describe()
        for pending in description.raw_description.pending_activities:
            if (
                pending.activity_type.name == "ship_order"
                and pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                and pending.attempt >= min_attempt
            ):
                return int(pending.last_worker_identity.split("@", 1)[0])
        return None

    victim_pid = await _until(shipping, "ship_order never started")
    victim = workers.by_pid(victim_pid)
    if victim is None:
        raise RuntimeError(f"ship_order runs on an unknown worker {victim_pid}")
    os.kill(victim_pid, signal.SIGKILL)
    killed = time.monotonic()
    workers.processes[victim].wait()
    rerun_pid = await _until(lambda: shipping(2), "ship_order never ran again")
    elapsed = time.monotonic() - killed
    if rerun_pid == victim_pid:
        raise RuntimeError("ship_order ran again on the killed worker")
    await handle.terminate("recovery bench round done")
    workers.start(victim)
    return elapsed


async def _has(client: Client, pids: set[int]) -> bool:
    return pids <= await _pollers(client)
