"""LoyaltyWorkflow: one long-lived workflow per customer, counting points."""

from __future__ import annotations

import dataclasses

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_temporal_workers.models import LOYALTY, LoyaltyAccount
    from durable_temporal_workers.registry import registry
    from durable_temporal_workers.workflows.inputs import MAX_INT, strict_update


@registry.workflow(queue=LOYALTY)
class LoyaltyWorkflow:
    """Points come in through the ``addLoyaltyPoint`` update, which answers
    with a message; crossing ``gold_threshold`` gets a different one.

    Continues as new, carrying the points, after ``continue_as_new_after``
    updates in one run or when the server suggests it.
    """

    @workflow.init
    def __init__(self, account: LoyaltyAccount) -> None:
        self._account = account
        self._points = account.points
        self._updates = 0
        self._message = self._status()

    @workflow.run
    async def run(self, account: LoyaltyAccount) -> None:
        limit = max(1, account.continue_as_new_after)
        await workflow.wait_condition(
            lambda: self._updates >= limit or workflow.info().is_continue_as_new_suggested()
        )
        # Let accepted updates finish so their callers get an answer from
        # this run; later ones go to the next run.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            dataclasses.replace(account, points=self._points, run_number=account.run_number + 1)
        )

    @workflow.update(name="addLoyaltyPoint")
    @strict_update("addLoyaltyPoint")
    def add_loyalty_point(self, points: int = 1) -> str:
        was_gold = self._is_gold()
        self._points += points
        self._updates += 1
        if self._is_gold() and not was_gold:
            self._message = (
                f"Congratulations {self._account.customer_id}, you reached Gold status "
                f"with {_points(self._points)}!"
            )
        else:
            self._message = self._status()
        return self._message

    @add_loyalty_point.validator
    @strict_update("addLoyaltyPoint")
    def validate_add_loyalty_point(self, points: int = 1) -> None:
        # Rejected updates leave no trace in the workflow history.
        if points < 1:
            raise ValueError(f"points must be at least 1, got {points}")
        # The total goes into the next run's input, which must still be valid input.
        if self._points + points > MAX_INT:
            raise ValueError(f"{self._points} + {points} points is more than 2^63 - 1")

    @workflow.query(name="getLoyaltyMessage")
    def get_loyalty_message(self) -> str:
        return self._message

    def _is_gold(self) -> bool:
        return self._points >= self._account.gold_threshold

    def _status(self) -> str:
        customer = self._account.customer_id
        if self._is_gold():
            return f"{customer} is a Gold member with {_points(self._points)}."
        missing = self._account.gold_threshold - self._points
        return f"{customer} has {_points(self._points)}, {missing} more to Gold."


def _points(count: int) -> str:
    return f"{count} point{'' if count == 1 else 's'}"
