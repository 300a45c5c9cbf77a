"""One worker per task queue, the way the worker role runs a package of your own.

Usage: shop-worker TASK_QUEUE. The role's unit passes the queue (%i); the role's files put
TEMPORAL_WORKERS_METRICS_ADDRESS (per queue) and temporal_worker_environment in the environment.
"""

import asyncio
import os
import sys
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker


@activity.defn
async def greet(name: str) -> str:
    return f"{os.environ['SHOP_GREETING']} {name} from {activity.info().task_queue}"


@workflow.defn(name="ShopWorkflow")
class ShopWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=30)
        )


async def serve(queue: str) -> None:
    metrics = PrometheusConfig(bind_address=os.environ["TEMPORAL_WORKERS_METRICS_ADDRESS"])
    runtime = Runtime(telemetry=TelemetryConfig(metrics=metrics))
    client = await Client.connect(os.environ["SHOP_TEMPORAL_ADDRESS"], runtime=runtime)
    worker = Worker(client, task_queue=queue, workflows=[ShopWorkflow], activities=[greet])
    await worker.run()


def main() -> None:
    asyncio.run(serve(sys.argv[1]))
