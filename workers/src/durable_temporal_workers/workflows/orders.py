"""OrderWorkflow: validate, charge, ship, notify; undone if it fails or is cancelled.

Activity options are not written here: each call gets the timeouts and retry
policy that the worker's config gives that activity (see ``workflows/__init__.py``).
By default the compensations, refund_payment and cancel_shipment, retry until they succeed.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from durable_temporal_workers.activities.orders import OrderActivities
    from durable_temporal_workers.models import ORDERS, Notification, Order, OrderResult
    from durable_temporal_workers.registry import registry
    from durable_temporal_workers.workflows.compensations import Compensations

ORDER_FAILED = "OrderFailed"


@registry.workflow(
    queue=ORDERS,
    activities=[
        OrderActivities.validate_order,
        OrderActivities.charge_payment,
        OrderActivities.ship_order,
        OrderActivities.send_notification,
        OrderActivities.refund_payment,
        OrderActivities.cancel_shipment,
    ],
)
class OrderWorkflow:
    """Each step has its own timeout and retry policy, from the worker's config.

    The ``Order`` is decoded strictly: a malformed one fails the workflow at
    once with a non-retryable ``InvalidInput`` naming each bad field, before
    any activity runs (why: see ``workflows/__init__.py``).

    A well-formed but invalid order (no address, a zero quantity) fails in
    validate_order with a non-retryable ``InvalidOrder`` error, on its first attempt.

    Once validated, the order is a saga: if charging, shipping or notifying
    fails, the shipment is cancelled and the charge refunded (the workflow
    fails with ``OrderFailed``); if the order is cancelled meanwhile, the same
    undo runs and the workflow ends CANCELED. Only steps that ran are undone.

    An order with ``hold_seconds`` waits that long on a durable timer between
    the charge and the shipment; cancelled meanwhile, it refunds the charge.
    """

    @workflow.run
    async def run(self, order: Order) -> OrderResult:
        # Timeouts and retries: the worker's config for each activity name.
        await registry.execute(OrderActivities.validate_order, order)
        undo = Compensations()
        try:
            undo.add(OrderActivities.refund_payment, order)
            charge = await registry.execute(OrderActivities.charge_payment, order)
            if order.hold_seconds:
                await workflow.sleep(order.hold_seconds)
            undo.add(OrderActivities.cancel_shipment, order)
            shipment = await registry.execute(OrderActivities.ship_order, order)
            message = f"Order {order.order_id} has shipped: {shipment.tracking_number}"
            notification = Notification(order.order_id, order.email, message, order.faults)
            await registry.execute(OrderActivities.send_notification, notification)
        except (ActivityError, asyncio.CancelledError) as err:
            raise await undo.after(err, ORDER_FAILED) from err
        return OrderResult(
            order_id=order.order_id,
            status="COMPLETED",
            amount_cents=charge.amount_cents,
            charge_id=charge.charge_id,
            tracking_number=shipment.tracking_number,
        )
