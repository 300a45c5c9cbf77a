"""The bare-SDK baseline: OrderWorkflow's shape (four activities in a row) with no-op
activities, SDK defaults and nothing else, on its own task queue.

Usage: python bare_worker.py ADDRESS TASK_QUEUE   (runs until killed)
"""

import asyncio
import sys
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

Order = dict[str, Any]


@activity.defn
async def validate_order(order: Order) -> None:
    return None


@activity.defn
async def charge_payment(order: Order) -> Order:
    return {"charge_id": f"CH-{order['order_id']}", "amount_cents": 2500}


@activity.defn
async def ship_order(order: Order) -> Order:
    return {"tracking_number": f"TRK-{order['order_id']}"}


@activity.defn
async def send_notification(notification: Order) -> None:
    return None


# The same workflow type name as the bundled one, so the load client treats both alike.
@workflow.defn(name="OrderWorkflow")
class BareOrderWorkflow:
    @workflow.run
    async def run(self, order: Order) -> Order:
        timeout = timedelta(seconds=30)
        await workflow.execute_activity(validate_order, order, start_to_close_timeout=timeout)
        charge = await workflow.execute_activity(
            charge_payment, order, start_to_close_timeout=timeout
        )
        shipment = await workflow.execute_activity(
            ship_order, order, start_to_close_timeout=timeout
        )
        message = {"order_id": order["order_id"], "message": shipment["tracking_number"]}
        await workflow.execute_activity(send_notification, message, start_to_close_timeout=timeout)
        return {"order_id": order["order_id"], "status": "COMPLETED", **charge, **shipment}


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    activities = [validate_order, charge_payment, ship_order, send_notification]
    worker = Worker(
        client, task_queue=task_queue, workflows=[BareOrderWorkflow], activities=activities
    )
    await worker.run()


# The guard matters: the workflow sandbox re-imports this module to validate the workflow.
if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
