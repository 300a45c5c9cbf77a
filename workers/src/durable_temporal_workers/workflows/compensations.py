"""The undo list of a saga, run newest first when a step fails or the workflow is cancelled."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from durable_temporal_workers.models import SagaFailure
    from durable_temporal_workers.registry import registry


class Compensations:
    """Undo actions of a saga.

    Add a step's compensation *before* running the step: an activity that
    failed, or was cancelled, may still have committed its effect (the reply
    was lost), and the compensations are no-ops when there is nothing to undo.
    """

    def __init__(self) -> None:
        self._steps: list[tuple[Callable[..., Awaitable[Any]], Any]] = []

    def add(self, fn: Callable[..., Awaitable[Any]], arg: Any) -> None:
        self._steps.append((fn, arg))

    async def unwind(self) -> list[str]:
        """Run every compensation, newest first; returns what each did."""
        done: list[str] = []
        for fn, arg in reversed(self._steps):
            try:
                # Options from config like any call (workflows/__init__.py): by
                # default, compensations retry until they succeed.
                await _shielded(registry.execute(fn, arg))
                done.append(fn.__name__)
            except ActivityError as err:
                workflow.logger.error("compensation %s failed: %s", fn.__name__, err.cause)
                done.append(f"{fn.__name__} (failed: {err.cause})")
        return done

    async def after(self, error: BaseException, error_type: str) -> BaseException:
        """Undo what ran, then the exception that ends the workflow.

        A cancel stays a cancel (the workflow ends CANCELED); a failed step
        becomes ``error_type``, naming the step and what was undone (FAILED).
        """
        done = await self.unwind()
        if is_cancelled_exception(error) or not isinstance(error, ActivityError):
            return asyncio.CancelledError()
        cause = str(error.cause or error)
        return ApplicationError(
            f"{workflow.info().workflow_id} failed at {error.activity_type}: {cause}; "
            f"compensated: {', '.join(done) or 'nothing'}",
            SagaFailure(failed_step=error.activity_type, error=cause, compensations=done),
            type=error_type,
            non_retryable=True,
        )


async def _shielded(step: Awaitable[Any]) -> Any:
    """Await ``step`` to its end even if the workflow is cancelled (again) meanwhile."""
    task = asyncio.ensure_future(step)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
