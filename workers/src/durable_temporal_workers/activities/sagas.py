"""Saga activities: money moves and trip reservations, each undoable.

Compensations (refund, reverse_credit, cancel_*) undo the effect stored under
the step's key if there is one, and do nothing otherwise. That is what lets a
workflow schedule a compensation for a step whose outcome it does not know
(the activity failed, but may have committed before failing).
"""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_temporal_workers.activities import effect_key, reference
from durable_temporal_workers.deps import ActivityDeps
from durable_temporal_workers.models import (
    SAGAS,
    BalancesReport,
    FaultPlan,
    Receipt,
    Reservation,
    SeedAccounts,
    TransferLeg,
)
from durable_temporal_workers.registry import registry
from durable_temporal_workers.store import Effect, StoreError


class SagaActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._store = deps.store
        self._faults = deps.faults

    # --- money transfer -----------------------------------------------------------

    @registry.activity(queue=SAGAS)
    async def debit(self, leg: TransferLeg) -> Receipt:
        effect = Effect(effect_key(), "debit", leg.account, -leg.amount_cents, leg.account)
        return await self._apply(effect, leg.faults, require_funds=True)

    @registry.activity(queue=SAGAS)
    async def credit(self, leg: TransferLeg) -> Receipt:
        effect = Effect(effect_key(), "credit", leg.account, leg.amount_cents, leg.account)
        return await self._apply(effect, leg.faults)

    @registry.activity(queue=SAGAS)
    async def refund(self, leg: TransferLeg) -> Receipt:
        return await self._revert("debit", leg.faults)

    @registry.activity(queue=SAGAS)
    async def reverse_credit(self, leg: TransferLeg) -> Receipt:
        return await self._revert("credit", leg.faults)

    # --- trip booking -------------------------------------------------------------

    @registry.activity(queue=SAGAS)
    async def reserve_car(self, reservation: Reservation) -> Receipt:
        return await self._reserve(reservation)

    @registry.activity(queue=SAGAS)
    async def reserve_hotel(self, reservation: Reservation) -> Receipt:
        return await self._reserve(reservation)

    @registry.activity(queue=SAGAS)
    async def reserve_flight(self, reservation: Reservation) -> Receipt:
        return await self._reserve(reservation)

    @registry.activity(queue=SAGAS)
    async def cancel_car(self, reservation: Reservation) -> Receipt:
        return await self._revert("reserve_car", reservation.faults)

    @registry.activity(queue=SAGAS)
    async def cancel_hotel(self, reservation: Reservation) -> Receipt:
        return await self._revert("reserve_hotel", reservation.faults)

    @registry.activity(queue=SAGAS)
    async def cancel_flight(self, reservation: Reservation) -> Receipt:
        return await self._revert("reserve_flight", reservation.faults)

    # --- accounts -----------------------------------------------------------------

    @registry.activity(queue=SAGAS)
    async def seed_accounts(self, seed: SeedAccounts) -> dict[str, int]:
        prefix = effect_key()
        try:
            return await asyncio.to_thread(self._store.seed_accounts, seed.balances_cents, prefix)
        except StoreError as err:
            # A negative or overflowing balance: the same seed fails the same way again.
            raise err.application_error() from err

    @registry.activity(queue=SAGAS)
    async def read_balances(self) -> BalancesReport:
        accounts = await asyncio.to_thread(self._store.balances)
        report = await asyncio.to_thread(self._store.report)
        return BalancesReport(accounts, sum(accounts.values()), report)

    # --- shared -------------------------------------------------------------------

    async def _reserve(self, reservation: Reservation) -> Receipt:
        key = effect_key()
        kind = activity.info().activity_type
        effect = Effect(
            key,
            kind,
            reservation.item,
            detail=reference(kind.removeprefix("reserve_").upper(), key),
        )
        return await self._apply(effect, reservation.faults)

    async def _apply(
        self, effect: Effect, faults: FaultPlan, require_funds: bool = False
    ) -> Receipt:
        self._faults.before_effect(faults)
        try:
            # The store blocks (SQLite); keep it off the event loop.
            receipt = await asyncio.to_thread(
                self._store.apply, effect, require_funds=require_funds
            )
        except StoreError as err:
            # Missing account, insufficient funds, a balance past 64 bits: retrying
            # cannot fix these.
            refusal: ApplicationError = err.application_error()
            raise refusal from err
        activity.logger.info("%s %s: %s", effect.kind, effect.key, receipt.outcome)
        self._faults.after_effect(faults)
        return receipt

    async def _revert(self, step: str, faults: FaultPlan) -> Receipt:
        self._faults.before_effect(faults)
        info = activity.info()
        key, original = effect_key(), effect_key(step)
        receipt = await asyncio.to_thread(self._store.revert, key, info.activity_type, original)
        activity.logger.info("%s %s: %s", info.activity_type, key, receipt.outcome)
        self._faults.after_effect(faults)
        return receipt
