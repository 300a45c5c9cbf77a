"""Failure injection for tests and demos, decided per activity attempt.

Two sources: the workflow input's :class:`FaultPlan` (fail the first N
attempts, counted with ``activity.info().attempt``, which the server keeps, so
the count survives retries and worker restarts), and random rates from the
``faults`` config section. Both only work where ``faults.enabled`` is set
(see policies.py).

An activity that retries for ever (the compensations) fails at most
:data:`MAX_PLANNED_FAILURES_WITHOUT_RETRY_LIMIT` planned attempts, so no input
can keep a refund from happening.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from temporalio import activity
from temporalio.exceptions import ApplicationError

from durable_temporal_workers.config import FaultRates
from durable_temporal_workers.models import FaultPlan

INJECTED_FAILURE = "InjectedFailure"
MAX_PLANNED_FAILURES_WITHOUT_RETRY_LIMIT = 3


class FaultInjector:
    def __init__(self, rates: Mapping[str, FaultRates], rng: random.Random | None = None) -> None:
        self._rates = dict(rates)
        self._rng = rng or random.Random()

    def before_effect(self, plan: FaultPlan) -> None:
        """Maybe fail this attempt before the activity does anything."""
        info = activity.info()
        rate = self._rates.get(info.activity_type, FaultRates()).fail_before_rate
        self._maybe_fail(plan.fail_times.get(info.activity_type, 0), rate, "before its side effect")

    def after_effect(self, plan: FaultPlan) -> None:
        """Maybe fail this attempt after the side effect committed (a lost reply)."""
        info = activity.info()
        rate = self._rates.get(info.activity_type, FaultRates()).fail_after_rate
        times = plan.fail_after_commit_times.get(info.activity_type, 0)
        self._maybe_fail(times, rate, "after its side effect committed")

    def _maybe_fail(self, times: int, rate: float, when: str) -> None:
        info = activity.info()
        if info.retry_policy is not None and info.retry_policy.maximum_attempts == 0:
            times = min(times, MAX_PLANNED_FAILURES_WITHOUT_RETRY_LIMIT)
        if info.attempt <= times or (rate > 0 and self._rng.random() < rate):
            # Retryable on purpose: the retry policy decides what happens next.
            raise ApplicationError(
                f"injected failure in {info.activity_type} {when} (attempt {info.attempt})",
                type=INJECTED_FAILURE,
            )
