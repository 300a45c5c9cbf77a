"""OrderWorkflow: validate, charge, ship, notify."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_temporal_workers.activities.orders import OrderActivities
    from durable_temporal_workers.models import ORDERS, Notification, Order, OrderResult
    from durable_temporal_workers.registry import registry


@registry.workflow(
    queue=ORDERS,
    activities=[
        OrderActivities.validate_order,
        OrderActivities.charge_payment,
        OrderActivities.ship_order,
        OrderActivities.send_notification,
    ],
)
class OrderWorkflow:
    """Each step has its own timeout and retry policy, from the worker's config.

    An invalid order fails in validate_order with a non-retryable
    ``InvalidOrder`` error, so it fails at once, on its first attempt.
    """

    @workflow.run
    async def run(self, order: Order) -> OrderResult:
        await registry.execute(OrderActivities.validate_order, order)
        charge = await registry.execute(OrderActivities.charge_payment, order)
        shipment = await registry.execute(OrderActivities.ship_order, order)
        message = f"Order {order.order_id} has shipped: {shipment.tracking_number}"
        notification = Notification(order.order_id, order.email, message, order.faults)
        await registry.execute(OrderActivities.send_notification, notification)
        return OrderResult(
            order_id=order.order_id,
            status="COMPLETED",
            amount_cents=charge.amount_cents,
            charge_id=charge.charge_id,
            tracking_number=shipment.tracking_number,
        )
