"""LoyaltyWorkflow: one long-lived workflow per customer, counting points."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from durable_temporal_workers.models import AT_LEAST_ONE, LOYALTY, LoyaltyAccount
    from durable_temporal_workers.registry import registry
    from durable_temporal_workers.workflows.inputs import MAX_INT, invalid_input, strict_update

ADD_LOYALTY_POINT = "addLoyaltyPoint"


@registry.workflow(queue=LOYALTY)
class LoyaltyWorkflow:
    """Points come in through the ``addLoyaltyPoint`` update, which answers
    with a message; crossing ``gold_threshold`` gets a different one.

    Continues as new, carrying the points, after ``continue_as_new_after``
    updates in one run or when the server suggests it.

    The ``LoyaltyAccount`` is decoded strictly, and so is the update's
    argument: a bad start fails the workflow at once with a non-retryable
    ``InvalidInput``; a bad update (``2.5``, ``true``, a number past 64 bits)
    is rejected by its validator with the same error and leaves no trace in
    the history (why: see ``workflows/__init__.py``). Calls no activity.
    """

    @workflow.init
    def __init__(self, account: LoyaltyAccount) -> None:
        self._account = account
        self._points = account.points
        self._updates = 0
        self._message = self._status()

    @workflow.run
    async def run(self, account: LoyaltyAccount) -> None:
        limit = account.continue_as_new_after  # at least 1, checked with the input
        await workflow.wait_condition(
            lambda: self._updates >= limit or workflow.info().is_continue_as_new_suggested()
        )
        # Let accepted updates finish so their callers get an answer from
        # this run; later ones go to the next run.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            dataclasses.replace(account, points=self._points, run_number=account.run_number + 1)
        )

    @workflow.update(name=ADD_LOYALTY_POINT)
    @strict_update(ADD_LOYALTY_POINT)
    def add_loyalty_point(self, points: Annotated[int, AT_LEAST_ONE] = 1) -> str:
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
    @strict_update(ADD_LOYALTY_POINT)
    def validate_add_loyalty_point(self, points: Annotated[int, AT_LEAST_ONE] = 1) -> None:
        # Rejected updates leave no trace in the workflow history. Decoding has
        # checked the argument itself; the total goes into the next run's input,
        # which must still be valid input.
        if self._points + points > MAX_INT:
            problem = f"{self._points} + {points} points is more than 2^63 - 1"
            raise invalid_input(ADD_LOYALTY_POINT, [("points", problem)])

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
