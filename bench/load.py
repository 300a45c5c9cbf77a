"""The load client: N orders through a task queue with a bounded number in flight."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client

# Both workers register this workflow type; only the task queue tells them apart.
ORDER_WORKFLOW = "OrderWorkflow"
# A stuck workflow fails its slot after this instead of hanging the benchmark.
WORKFLOW_TIMEOUT = timedelta(minutes=2)


@dataclass
class Batch:
    """What one or more runs of the load client saw, merged."""

    workflows: int = 0
    failures: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    last_workflow_id: str = ""
    errors: list[str] = field(default_factory=list)

    def merge(self, other: Batch) -> None:
        self.workflows += other.workflows
        self.failures += other.failures
        self.seconds += other.seconds
        self.latencies.extend(other.latencies)
        self.last_workflow_id = other.last_workflow_id or self.last_workflow_id
        self.errors.extend(other.errors[: 5 - len(self.errors)])

    @property
    def per_second(self) -> float:
        return self.workflows / self.seconds if self.seconds else 0.0

    def percentile(self, pct: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[pct - 1]


def order(order_id: str) -> dict[str, Any]:
    # The input the bundled OrderWorkflow takes; the bare one reads only order_id.
    return {
        "order_id": order_id,
        "items": [{"sku": "BENCH-1", "quantity": 2, "unit_price_cents": 1250}],
        "address": "1 Bench Street, Springfield",
        "email": "bench@example.com",
    }


async def run_orders(
    client: Client, task_queue: str, count: int, concurrency: int, id_prefix: str
) -> Batch:
    """Run ``count`` orders on ``task_queue`` to their end, at most ``concurrency`` in flight."""
    return await _sdk_orders(client.execute_workflow, task_queue, count, concurrency, id_prefix)


async def sdk_starts(
    client: Client, task_queue: str, count: int, concurrency: int, id_prefix: str
) -> Batch:
    """Orders started (not awaited) with the SDK client directly."""
    return await _sdk_orders(client.start_workflow, task_queue, count, concurrency, id_prefix)


async def _sdk_orders(
    call: Callable[..., Awaitable[Any]],
    task_queue: str,
    count: int,
    concurrency: int,
    id_prefix: str,
) -> Batch:
    async def one(workflow_id: str) -> None:
        await call(
            ORDER_WORKFLOW,
            order(workflow_id),
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=WORKFLOW_TIMEOUT,
        )

    return await _bounded(count, concurrency, id_prefix, one)


async def _bounded(
    count: int, concurrency: int, id_prefix: str, one: Callable[[str], Awaitable[None]]
) -> Batch:
    """``one(workflow_id)`` for ``count`` ids, at most ``concurrency`` at a time, each timed.

    A fixed set of runners pulling from a shared counter keeps the number in flight bounded
    without creating ``count`` tasks up front: more in flight only adds queueing on 2 cores.
    """
    batch = Batch()
    next_index = iter(range(count))

    async def runner() -> None:
        for index in next_index:
            workflow_id = f"{id_prefix}-{index}"
            started = time.perf_counter()
            try:
                await one(workflow_id)
            except Exception as err:  # a failed workflow is counted, not fatal
                batch.failures += 1
                if len(batch.errors) < 5:
                    batch.errors.append(f"{workflow_id}: {err}")
                continue
            batch.latencies.append(time.perf_counter() - started)
            batch.workflows += 1
            batch.last_workflow_id = workflow_id

    started = time.perf_counter()
    await asyncio.gather(*(runner() for _ in range(min(concurrency, count))))
    batch.seconds = time.perf_counter() - started
    return batch


async def _post_order(http: Any, workflow_id: str) -> None:
    """Start an order with a POST to the HTTP API (``http``: aiohttp.ClientSession)."""
    async with http.post(
        "/orders", json=order(workflow_id), headers={"Idempotency-Key": workflow_id}
    ) as response:
        text = await response.text()
        if response.status != 202:
            raise RuntimeError(f"{response.status}: {text[:200]}")


async def api_starts(http: Any, count: int, concurrency: int, id_prefix: str) -> Batch:
    """Orders started (not awaited) through the HTTP API."""

    return await _bounded(count, concurrency, id_prefix, lambda wid: _post_order(http, wid))


async def api_orders(http: Any, count: int, concurrency: int, id_prefix: str) -> Batch:
    """Orders placed through the API and followed there to their end (POST, then GET the result)."""

    async def one(workflow_id: str) -> None:
        await _post_order(http, workflow_id)
        while True:
            async with http.get(
                f"/workflows/{workflow_id}/result", params={"wait_seconds": "30"}
            ) as answer:
                text = await answer.text()
                if answer.status == 200:
                    if json.loads(text)["status"] != "COMPLETED":
                        raise RuntimeError(text[:200])
                    return
                if answer.status != 202:
                    raise RuntimeError(f"{answer.status}: {text[:200]}")

    return await _bounded(count, concurrency, id_prefix, one)


async def wait_all(client: Client, workflow_ids: list[str], concurrency: int = 50) -> None:
    """Until every one of these workflows closed: started batches must not queue into the next."""
    pending = iter(workflow_ids)

    async def runner() -> None:
        for workflow_id in pending:
            try:
                await client.get_workflow_handle(workflow_id).result()
            except Exception:  # a failure is the next batch's concern no more
                continue

    await asyncio.gather(*(runner() for _ in range(concurrency)))
