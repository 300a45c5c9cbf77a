"""Sagas: a money transfer and a trip booking, undone step by step on failure or cancel.

A failed step fails the workflow (TransferFailed, BookingFailed) after its
compensations ran; a cancel ends it CANCELED after they ran. Either way the
steps that ran are undone, newest first, and nothing else.

Activity options are not written here: each call gets the timeouts and retry
policy that the worker's config gives that activity (see ``workflows/__init__.py``).
By default the compensations (refund, reverse_credit, cancel_*) retry until they succeed.

Each workflow decodes its input strictly: a malformed one fails it at once
with a non-retryable ``InvalidInput`` naming each bad field, before any
activity runs (why: see ``workflows/__init__.py``).
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from durable_temporal_workers.activities.sagas import SagaActivities
    from durable_temporal_workers.models import (
        SAGAS,
        BalancesReport,
        Reservation,
        SeedAccounts,
        Transfer,
        TransferLeg,
        TransferResult,
        Trip,
        TripResult,
    )
    from durable_temporal_workers.registry import registry
    from durable_temporal_workers.workflows.compensations import Compensations


@registry.workflow(
    queue=SAGAS,
    activities=[
        SagaActivities.debit,
        SagaActivities.credit,
        SagaActivities.refund,
        SagaActivities.reverse_credit,
    ],
)
class TransferMoneyWorkflow:
    """Debit, then credit; if the credit fails or the transfer is cancelled, undo both."""

    @workflow.run
    async def run(self, transfer: Transfer) -> TransferResult:
        # Well-formed (decoding checked the types and caps), but is it a transfer?
        if transfer.amount_cents <= 0 or transfer.from_account == transfer.to_account:
            raise ApplicationError(
                "a transfer needs a positive amount between two different accounts",
                type="InvalidTransfer",
                non_retryable=True,
            )
        debit = TransferLeg(transfer.from_account, transfer.amount_cents, transfer.faults)
        credit = TransferLeg(transfer.to_account, transfer.amount_cents, transfer.faults)
        undo = Compensations()
        try:
            # Timeouts and retries: the worker's config for each activity name.
            undo.add(SagaActivities.refund, debit)
            await registry.execute(SagaActivities.debit, debit)
            undo.add(SagaActivities.reverse_credit, credit)
            await registry.execute(SagaActivities.credit, credit)
        except (ActivityError, asyncio.CancelledError) as err:
            raise await undo.after(err, "TransferFailed") from err
        return TransferResult(
            transfer_id=workflow.info().workflow_id,
            status="COMPLETED",
            from_account=transfer.from_account,
            to_account=transfer.to_account,
            amount_cents=transfer.amount_cents,
        )


@registry.workflow(
    queue=SAGAS,
    activities=[
        SagaActivities.reserve_car,
        SagaActivities.reserve_hotel,
        SagaActivities.reserve_flight,
        SagaActivities.cancel_car,
        SagaActivities.cancel_hotel,
        SagaActivities.cancel_flight,
    ],
)
class BookTripWorkflow:
    """Reserve car, hotel, flight; on failure or cancel, cancel them in reverse order."""

    @workflow.run
    async def run(self, trip: Trip) -> TripResult:
        steps = [
            (SagaActivities.reserve_car, SagaActivities.cancel_car, trip.car),
            (SagaActivities.reserve_hotel, SagaActivities.cancel_hotel, trip.hotel),
            (SagaActivities.reserve_flight, SagaActivities.cancel_flight, trip.flight),
        ]
        undo = Compensations()
        confirmations: dict[str, str] = {}
        try:
            for reserve, cancel, item in steps:
                # Timeouts and retries: the worker's config for each activity name.
                reservation = Reservation(item, trip.faults)
                undo.add(cancel, reservation)
                receipt = await registry.execute(reserve, reservation)
                confirmations[reserve.__name__] = receipt.detail
        except (ActivityError, asyncio.CancelledError) as err:
            raise await undo.after(err, "BookingFailed") from err
        return TripResult(workflow.info().workflow_id, "BOOKED", confirmations)


@registry.workflow(queue=SAGAS, activities=[SagaActivities.seed_accounts])
class SeedAccountsWorkflow:
    """Create accounts or reset their balances, in the workers' store."""

    @workflow.run
    async def run(self, seed: SeedAccounts) -> dict[str, int]:
        return await registry.execute(SagaActivities.seed_accounts, seed)


@registry.workflow(queue=SAGAS, activities=[SagaActivities.read_balances])
class BalancesWorkflow:
    """Balances, their total, and the side-effect counts of the workers' store."""

    @workflow.run
    async def run(self) -> BalancesReport:
        return await registry.execute(SagaActivities.read_balances)
