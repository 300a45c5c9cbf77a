"""Activity timeouts and retry policies from the worker's config.

Workflow code calls activities without timeouts or retry policies; this
interceptor fills in those the call left unset, from the config of the worker
running the workflow. Changing them takes a restart, not a code change.

Why that is safe for determinism: replay matches scheduled activities by
type and id, not by their options, so new options apply to activities
scheduled after the restart and leave running workflows replayable.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from temporalio.workflow import ActivityHandle

from durable_temporal_workers.config import Config


@dataclasses.dataclass(frozen=True)
class ActivityPolicy:
    start_to_close: timedelta
    retry: RetryPolicy


def activity_policy(config: Config, name: str) -> ActivityPolicy:
    retry = config.retries.for_activity(name)
    return ActivityPolicy(
        start_to_close=timedelta(seconds=config.activity_timeout_seconds(name)),
        retry=RetryPolicy(
            initial_interval=timedelta(seconds=retry.initial_interval_seconds),
            backoff_coefficient=retry.backoff_coefficient,
            maximum_interval=timedelta(seconds=retry.maximum_interval_seconds),
            maximum_attempts=retry.maximum_attempts,
            non_retryable_error_types=list(retry.non_retryable_error_types),
        ),
    )


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


class _Outbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, config: Config) -> None:
        super().__init__(next)
        self._config = config

    def start_activity(self, input: StartActivityInput) -> ActivityHandle[Any]:
        policy = activity_policy(self._config, input.activity)
        if input.start_to_close_timeout is None and input.schedule_to_close_timeout is None:
            input.start_to_close_timeout = policy.start_to_close
        if input.retry_policy is None:
            input.retry_policy = policy.retry
        return super().start_activity(input)
