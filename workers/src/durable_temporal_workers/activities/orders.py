"""Order activities: validate, charge, ship, notify, and the undo of charge and shipment."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_temporal_workers.activities import effect_key, reference
from durable_temporal_workers.deps import ActivityDeps
from durable_temporal_workers.models import (
    ORDERS,
    Charge,
    Notification,
    Order,
    Receipt,
    Shipment,
)
from durable_temporal_workers.registry import registry
from durable_temporal_workers.store import MAX_CENTS, Effect, StoreError

INVALID_ORDER = "InvalidOrder"


def order_problems(order: Order) -> list[str]:
    problems = []
    if not order.items:
        problems.append("it has no items")
    for item in order.items:
        if item.quantity <= 0:
            problems.append(f"item {item.sku!r} has quantity {item.quantity}")
        if item.unit_price_cents < 0:
            problems.append(f"item {item.sku!r} has a negative price")
    if not (order.address or "").strip():
        problems.append("the shipping address is missing")
    if abs(order.total_cents) > MAX_CENTS:
        # The charge could never be stored: an invalid order, not a retried charge.
        problems.append(f"its total of {order.total_cents} cents is past 2^63 - 1")
    return problems


class OrderActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._store = deps.store
        self._faults = deps.faults

    @registry.activity(queue=ORDERS)
    async def validate_order(self, order: Order) -> None:
        problems = order_problems(order)
        if problems:
            # Non-retryable: the same input fails the same way on every attempt.
            raise ApplicationError(
                f"order {order.order_id} is invalid: {'; '.join(problems)}",
                type=INVALID_ORDER,
                non_retryable=True,
            )
        self._faults.before_effect(order.faults)

    @registry.activity(queue=ORDERS)
    async def charge_payment(self, order: Order) -> Charge:
        self._faults.before_effect(order.faults)
        key = effect_key()
        charge = Effect(
            key, "charge", order.order_id, order.total_cents, detail=reference("CH", key)
        )
        try:
            # The store blocks (SQLite); keep it off the event loop other activities share.
            receipt = await asyncio.to_thread(self._store.apply, charge)
        except StoreError as err:
            # The same order is refused the same way on every attempt.
            raise err.application_error() from err
        activity.logger.info(
            "charge %s for %s: %s", receipt.detail, order.order_id, receipt.outcome
        )
        self._faults.after_effect(order.faults)
        return Charge(charge_id=receipt.detail, amount_cents=receipt.amount_cents)

    @registry.activity(queue=ORDERS)
    async def ship_order(self, order: Order) -> Shipment:
        self._faults.before_effect(order.faults)
        if order.ship_delay_seconds > 0:
            activity.logger.info("packing %s for %ss", order.order_id, order.ship_delay_seconds)
            await asyncio.sleep(order.ship_delay_seconds)
        key = effect_key()
        shipment = Effect(key, "shipment", order.order_id, detail=reference("TRK", key))
        receipt = await asyncio.to_thread(self._store.apply, shipment)
        activity.logger.info(
            "shipment %s for %s: %s", receipt.detail, order.order_id, receipt.outcome
        )
        self._faults.after_effect(order.faults)
        return Shipment(tracking_number=receipt.detail)

    @registry.activity(queue=ORDERS)
    async def send_notification(self, notification: Notification) -> None:
        self._faults.before_effect(notification.faults)
        key = effect_key()
        sent = Effect(key, "notification", notification.order_id, detail=notification.message)
        receipt = await asyncio.to_thread(self._store.apply, sent)
        # Stands in for an e-mail; the address is not logged, it is personal data.
        activity.logger.info("notification for %s: %s", notification.order_id, receipt.outcome)
        self._faults.after_effect(notification.faults)

    # --- compensations: no-ops when their step never took effect ------------------

    @registry.activity(queue=ORDERS)
    async def refund_payment(self, order: Order) -> Receipt:
        return await self._revert("charge_payment", order)

    @registry.activity(queue=ORDERS)
    async def cancel_shipment(self, order: Order) -> Receipt:
        return await self._revert("ship_order", order)

    async def _revert(self, step: str, order: Order) -> Receipt:
        self._faults.before_effect(order.faults)
        info = activity.info()
        key, original = effect_key(), effect_key(step)
        receipt = await asyncio.to_thread(self._store.revert, key, info.activity_type, original)
        activity.logger.info("%s for %s: %s", info.activity_type, order.order_id, receipt.outcome)
        self._faults.after_effect(order.faults)
        return receipt
