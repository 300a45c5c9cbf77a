"""Sagas: a money transfer and a trip booking, undone step by step on failure."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from durable_temporal_workers.activities.sagas import SagaActivities
    from durable_temporal_workers.models import (
        SAGAS,
        BalancesReport,
        Reservation,
        SagaFailure,
        SeedAccounts,
        Transfer,
        TransferLeg,
        TransferResult,
        Trip,
        TripResult,
    )
    from durable_temporal_workers.registry import registry


class Compensations:
    """Undo actions of a saga, run newest first when a step fails.

    Add a step's compensation *before* running the step: an activity that
    failed may still have committed its effect (the reply was lost), and the
    compensations are no-ops when there is nothing to undo.
    """

    def __init__(self) -> None:
        self._steps: list[tuple[Callable[..., Awaitable[Any]], Any]] = []

    def add(self, fn: Callable[..., Awaitable[Any]], arg: Any) -> None:
        self._steps.append((fn, arg))

    async def unwind(self, failed: ActivityError, error_type: str) -> NoReturn:
        done: list[str] = []
        for fn, arg in reversed(self._steps):
            try:
                # Compensations retry until they succeed (see config retries).
                await registry.execute(fn, arg)
                done.append(fn.__name__)
            except ActivityError as err:
                workflow.logger.error("compensation %s failed: %s", fn.__name__, err.cause)
                done.append(f"{fn.__name__} (failed: {err.cause})")
        cause = str(failed.cause or failed)
        raise ApplicationError(
            f"{workflow.info().workflow_id} failed at {failed.activity_type}: {cause}; "
            f"compensated: {', '.join(done) or 'nothing'}",
            SagaFailure(failed_step=failed.activity_type, error=cause, compensations=done),
            type=error_type,
            non_retryable=True,
        ) from failed


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
    """Debit, then credit; if the credit fails, refund the debit."""

    @workflow.run
    async def run(self, transfer: Transfer) -> TransferResult:
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
            undo.add(SagaActivities.refund, debit)
            await registry.execute(SagaActivities.debit, debit)
            undo.add(SagaActivities.reverse_credit, credit)
            await registry.execute(SagaActivities.credit, credit)
        except ActivityError as err:
            await undo.unwind(err, "TransferFailed")
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
    """Reserve car, hotel, flight; on failure cancel them in reverse order."""

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
                reservation = Reservation(item, trip.faults)
                undo.add(cancel, reservation)
                receipt = await registry.execute(reserve, reservation)
                confirmations[reserve.__name__] = receipt.detail
        except ActivityError as err:
            await undo.unwind(err, "BookingFailed")
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
