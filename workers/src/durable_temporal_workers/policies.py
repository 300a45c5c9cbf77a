"""Activity options from the worker's config: timeouts, retries and heartbeats.

Workflow code calls activities without timeouts or retry policies; this
interceptor fills in those the call left unset, from the config of the worker
running the workflow. Changing them takes a restart, not a code change.

Why that is safe for determinism: replay matches scheduled activities by
type and id, not by their options, so new options apply to activities
scheduled after the restart and leave running workflows replayable.

On the activity side, the same interceptor heartbeats for every async
activity while it runs. Without heartbeats a worker killed mid-activity is
noticed only when start_to_close expires, and a cancel never reaches a
running activity. Activities shorter than a heartbeat interval send none.

It also keeps fault injection a test tool: unless ``faults.enabled``, a
workflow whose first activity carries a fault plan fails with InvalidInput
before that activity is scheduled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from temporalio.workflow import ActivityHandle

from durable_temporal_workers.config import Config
from durable_temporal_workers.models import FaultPlan
from durable_temporal_workers.workflows.inputs import INVALID_INPUT

# Heartbeats per heartbeat timeout: one late heartbeat still leaves room for the next.
HEARTBEATS_PER_TIMEOUT = 3


@dataclasses.dataclass(frozen=True)
class ActivityPolicy:
    start_to_close: timedelta
    heartbeat: timedelta | None
    retry: RetryPolicy


def activity_policy(config: Config, name: str) -> ActivityPolicy:
    retry = config.retries.for_activity(name)
    heartbeat = config.timeouts.activity_heartbeat_seconds
    return ActivityPolicy(
        start_to_close=timedelta(seconds=config.activity_timeout_seconds(name)),
        heartbeat=None if heartbeat is None else timedelta(seconds=heartbeat),
        retry=RetryPolicy(
            initial_interval=timedelta(seconds=retry.initial_interval_seconds),
            backoff_coefficient=retry.backoff_coefficient,
            maximum_interval=timedelta(seconds=retry.maximum_interval_seconds),
            maximum_attempts=retry.maximum_attempts,
            non_retryable_error_types=list(retry.non_retryable_error_types),
        ),
    )


def heartbeat_interval(config: Config) -> timedelta | None:
    """How often running activities heartbeat; also the SDK's heartbeat throttle."""
    seconds = config.timeouts.activity_heartbeat_seconds
    return None if seconds is None else timedelta(seconds=seconds / HEARTBEATS_PER_TIMEOUT)


class ActivityPolicyInterceptor(Interceptor):
    def __init__(self, config: Config) -> None:
        self._config = config

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        config = self._config

        class _Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(_Outbound(outbound, config))

        return _Inbound

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Heartbeating(next)


class _Outbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, config: Config) -> None:
        super().__init__(next)
        self._config = config
        self._first_activity = True

    def start_activity(self, input: StartActivityInput) -> ActivityHandle[Any]:
        if self._first_activity:
            self._first_activity = False
            # Decided when the workflow first runs; a replay keeps what its history says.
            if not self._config.faults.enabled and not workflow.unsafe.is_replaying():
                _refuse_fault_plans(input.args)
        policy = activity_policy(self._config, input.activity)
        if input.start_to_close_timeout is None and input.schedule_to_close_timeout is None:
            input.start_to_close_timeout = policy.start_to_close
        if input.heartbeat_timeout is None:
            input.heartbeat_timeout = policy.heartbeat
        if input.retry_policy is None:
            input.retry_policy = policy.retry
        return super().start_activity(input)


def _refuse_fault_plans(args: Sequence[Any]) -> None:
    for arg in args:
        plan = getattr(arg, "faults", None)
        if isinstance(plan, FaultPlan) and (plan.fail_times or plan.fail_after_commit_times):
            fields = [
                name for name in ("fail_times", "fail_after_commit_times") if getattr(plan, name)
            ]
            raise ApplicationError(
                f"{' and '.join(fields)}: fault injection is off on these workers "
                "(a test tool: faults.enabled in their config)",
                type=INVALID_INPUT,
                non_retryable=True,
            )


class _Heartbeating(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        timeout = activity.info().heartbeat_timeout
        # Sync activities run in a thread, with no event loop to heartbeat from.
        if not timeout or not inspect.iscoroutinefunction(input.fn):
            return await super().execute_activity(input)
        beating = asyncio.create_task(_heartbeat(timeout / HEARTBEATS_PER_TIMEOUT))
        try:
            return await super().execute_activity(input)
        finally:
            beating.cancel()


async def _heartbeat(every: timedelta) -> None:
    while True:
        await asyncio.sleep(every.total_seconds())
        activity.heartbeat()
