"""Client operations behind the CLI: start workflows, wait, signal, query, update.

Every operation returns a JSON-ready dict. Starting a workflow uses the
workflow's registered task queue and the ``timeouts`` section of the config,
and attaches to a running workflow with the same id instead of failing, so
repeating a command is safe.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.converter import value_to_type
from temporalio.exceptions import ApplicationError, FailureError

from durable_temporal_workers.config import Config
from durable_temporal_workers.registry import Registry, WorkflowSpec

COMPLETED = "COMPLETED"
FAILED = "FAILED"
STARTED = "STARTED"


class InputError(ValueError):
    """Workflow input that does not match the workflow's parameter types."""


def workflow_inputs(spec: WorkflowSpec, values: list[Any]) -> list[Any]:
    """Convert JSON values to the workflow's parameter types, strictly.

    The SDK ignores unknown fields; here a typo such as ``fail_time`` is an
    error, because a test that injects no failure by mistake proves nothing.
    """
    run = spec.run
    hints = typing.get_type_hints(run)
    params = [p for p in inspect.signature(run).parameters.values() if p.name != "self"]
    required = [p for p in params if p.default is inspect.Parameter.empty]
    if not len(required) <= len(values) <= len(params):
        raise InputError(f"{spec.name} takes {len(required)} to {len(params)} arguments")
    converted = []
    for param, value in zip(params, values, strict=False):
        hint = hints[param.name]
        _reject_unknown_fields(hint, value, param.name)
        try:
            converted.append(value_to_type(hint, value))
        except (TypeError, ValueError) as err:
            reason = f"{err}: {err.__cause__}" if err.__cause__ else str(err)
            raise InputError(f"{spec.name} input {param.name}: {reason}") from err
    return converted


def _reject_unknown_fields(hint: Any, value: Any, path: str) -> None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if args and origin in (typing.Union, types.UnionType):
        for arg in args:
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                _reject_unknown_fields(arg, value, path)
        return
    if origin is list and isinstance(value, list):
        for i, item in enumerate(value):
            _reject_unknown_fields(args[0], item, f"{path}[{i}]")
        return
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        fields = typing.get_type_hints(hint)
        for key, item in value.items():
            if key not in fields:
                raise InputError(f"{path}: unknown field {key!r} (fields: {', '.join(fields)})")
            _reject_unknown_fields(fields[key], item, f"{path}.{key}")


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def failure_info(err: BaseException) -> dict[str, Any]:
    """Type, message and details of the most telling error in a failure chain.

    That is the outermost ApplicationError: a saga's own summary, or the
    activity's error under the SDK's generic "Activity task failed".
    """
    current: BaseException | None = err.cause if isinstance(err, WorkflowFailureError) else err
    first = current
    while current is not None:
        if isinstance(current, ApplicationError):
            return {
                "type": current.type or "ApplicationError",
                "message": current.message,
                "details": [to_json(d) for d in current.details],
            }
        current = current.cause if isinstance(current, FailureError) else None
    failed = first or err
    message = failed.message if isinstance(failed, FailureError) else str(failed)
    return {"type": type(failed).__name__, "message": message, "details": []}


class WorkflowClient:
    def __init__(self, client: Client, config: Config, registry: Registry) -> None:
        self.client = client
        self._config = config
        self._registry = registry

    async def start(
        self, workflow: str, args: list[Any], workflow_id: str, wait: bool = True
    ) -> dict[str, Any]:
        spec = self._registry.workflow_spec(workflow)
        timeouts = self._config.timeouts
        handle: WorkflowHandle[Any, Any] = await self.client.start_workflow(
            spec.name,
            args=workflow_inputs(spec, args),
            id=workflow_id,
            task_queue=spec.queue,
            execution_timeout=_seconds(timeouts.workflow_execution_seconds),
            run_timeout=_seconds(timeouts.workflow_run_seconds),
            task_timeout=_seconds(timeouts.workflow_task_seconds),
            # Repeating a start attaches to the running workflow.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        if not wait:
            return {"workflow_id": handle.id, "run_id": handle.result_run_id, "status": STARTED}
        return await self._result(handle)

    async def result(self, workflow_id: str, run_id: str | None = None) -> dict[str, Any]:
        return await self._result(self.client.get_workflow_handle(workflow_id, run_id=run_id))

    async def signal(self, workflow_id: str, signal: str) -> dict[str, Any]:
        await self.client.get_workflow_handle(workflow_id).signal(signal)
        return {"workflow_id": workflow_id, "signal": signal}

    async def query(self, workflow_id: str, query: str) -> Any:
        return await self.client.get_workflow_handle(workflow_id).query(query)

    async def update(self, workflow_id: str, update: str, args: list[Any]) -> Any:
        return await self.client.get_workflow_handle(workflow_id).execute_update(update, args=args)

    async def _result(self, handle: WorkflowHandle[Any, Any]) -> dict[str, Any]:
        ending: dict[str, Any]
        try:
            # Follow continue-as-new to the run that finally completes.
            result = await handle.result(follow_runs=True)
        except WorkflowFailureError as err:
            ending = {"status": FAILED, "error": failure_info(err)}
        else:
            ending = {"status": COMPLETED, "result": to_json(result)}
        # The latest run: after continue-as-new it is not the one started.
        latest = await self.client.get_workflow_handle(handle.id).describe()
        return {"workflow_id": handle.id, "run_id": latest.run_id, **ending}


def _seconds(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)
