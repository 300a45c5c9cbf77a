"""Which workflow and activity runs on which task queue, declared once.

Workflows and activities name their task queue in a decorator; a workflow
also lists the activities it calls. From that, :meth:`Registry.plan` checks
the wiring before a worker connects (unknown queue, activity not registered,
activity on another queue that the workflow did not name), so a mistake fails
at start-up instead of leaving a workflow stuck on a queue nobody polls.

Workflows call activities through :meth:`Registry.execute`, which routes
each call to the activity's queue. Timeouts and retry policies are filled in
by :class:`~durable_temporal_workers.policies.ActivityPolicyInterceptor` from
the worker's config.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from temporalio import activity, workflow

from durable_temporal_workers.deps import ActivityDeps
from durable_temporal_workers.workflows.inputs import strict_inputs, typed_run

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
C = TypeVar("C", bound=type)

ActivityFn = Callable[..., Awaitable[Any]]


class RegistryError(Exception):
    """The declared wiring of workflows, activities and queues is inconsistent."""


@dataclass(frozen=True)
class ActivitySpec:
    name: str
    queue: str
    # A function, or a method whose class is built once per worker with ActivityDeps.
    fn: ActivityFn

    @property
    def result_type(self) -> Any:
        return typing.get_type_hints(self.fn).get("return")


@dataclass(frozen=True)
class ActivityUse:
    """An activity a workflow calls; ``queue`` is set when it lives on another queue."""

    fn: ActivityFn
    queue: str | None = None


def on_queue(queue: str, fn: ActivityFn) -> ActivityUse:
    """Declare a call to an activity registered on another task queue."""
    return ActivityUse(fn, queue)


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    queue: str
    cls: type
    uses: tuple[ActivityUse, ...]

    @property
    def run(self) -> Callable[..., Awaitable[Any]]:
        """The ``@workflow.run`` method, with its typed signature (not the raw one
        :func:`strict_inputs` shows the SDK); this package's convention names it ``run``."""
        run: Callable[..., Awaitable[Any]] = typed_run(vars(self.cls)["run"])
        return run


@dataclass(frozen=True)
class QueuePlan:
    """Exactly what one worker polls: the workflows and activities of one queue."""

    queue: str
    workflows: tuple[WorkflowSpec, ...]
    activities: tuple[ActivitySpec, ...]


class Registry:
    def __init__(self) -> None:
        self._activities: dict[ActivityFn, ActivitySpec] = {}
        self._workflows: dict[str, WorkflowSpec] = {}

    # --- declaring ----------------------------------------------------------------

    def activity(self, *, queue: str, name: str | None = None) -> Callable[[F], F]:
        """Register an activity (function or method) on ``queue``; applies ``@activity.defn``."""

        def decorate(fn: F) -> F:
            activity_name = name or fn.__name__
            defined = activity.defn(name=activity_name)(fn)
            if workflow.unsafe.in_sandbox():
                return defined
            for spec in self._activities.values():
                if spec.name == activity_name and spec.queue == queue:
                    raise RegistryError(f"activity {activity_name!r} registered twice on {queue!r}")
            self._activities[defined] = ActivitySpec(activity_name, queue, defined)
            return defined

        return decorate

    def workflow(
        self,
        *,
        queue: str,
        activities: Iterable[ActivityFn | ActivityUse] = (),
        name: str | None = None,
    ) -> Callable[[C], C]:
        """Register a workflow class on ``queue``; applies ``@workflow.defn``.

        ``activities`` lists every activity the workflow calls. One registered
        on another queue must be wrapped in :func:`on_queue`.
        """
        uses = tuple(a if isinstance(a, ActivityUse) else ActivityUse(a) for a in activities)

        def decorate(cls: C) -> C:
            workflow_name = name or cls.__name__
            if "run" not in vars(cls):
                raise RegistryError(f"workflow {workflow_name}: name its @workflow.run method run")
            # Every workflow decodes its start input strictly: bad input fails
            # the workflow with InvalidInput instead of retrying its task.
            try:
                strict = strict_inputs(cls, workflow_name)
            except TypeError as err:
                raise RegistryError(str(err)) from None
            defined = workflow.defn(name=workflow_name)(strict)
            # The sandbox re-imports workflow modules for every run; the class
            # was registered when the worker first imported it.
            if workflow.unsafe.in_sandbox():
                return defined
            if workflow_name in self._workflows:
                raise RegistryError(f"workflow {workflow_name!r} registered twice")
            self._workflows[workflow_name] = WorkflowSpec(workflow_name, queue, defined, uses)
            return defined

        return decorate

    # --- reading ------------------------------------------------------------------

    def queues(self) -> list[str]:
        found = {s.queue for s in self._workflows.values()}
        found.update(s.queue for s in self._activities.values())
        return sorted(found)

    def activity_names(self) -> list[str]:
        return sorted({s.name for s in self._activities.values()})

    def workflows(self) -> list[WorkflowSpec]:
        return sorted(self._workflows.values(), key=lambda s: s.name)

    def workflow_spec(self, name: str) -> WorkflowSpec:
        try:
            return self._workflows[name]
        except KeyError:
            known = ", ".join(sorted(self._workflows))
            raise RegistryError(f"unknown workflow {name!r}; registered: {known}") from None

    def plan(self, queues: Sequence[str] | None = None) -> list[QueuePlan]:
        """What each worker polls, after checking the wiring of those queues."""
        registered = self.queues()
        chosen = list(dict.fromkeys(queues)) if queues else registered
        unknown = [q for q in chosen if q not in registered]
        if unknown:
            raise RegistryError(
                f"unknown task queue {', '.join(map(repr, unknown))}; "
                f"registered queues: {', '.join(registered)}"
            )
        problems = [p for q in chosen for wf in self._on(q) for p in self._check(wf)]
        if problems:
            raise RegistryError("; ".join(problems))
        for spec in self._activities.values():
            _owner_class(spec)  # raises if a method's class cannot be built
        return [
            QueuePlan(
                queue=q,
                workflows=tuple(self._on(q)),
                activities=tuple(
                    sorted(
                        (s for s in self._activities.values() if s.queue == q),
                        key=lambda s: s.name,
                    )
                ),
            )
            for q in chosen
        ]

    def bind(
        self, plan: QueuePlan, deps: ActivityDeps, owners: dict[type, object]
    ) -> list[ActivityFn]:
        """The callables a Worker runs for ``plan``: methods bound to one instance per class."""
        bound: list[ActivityFn] = []
        for spec in plan.activities:
            owner = _owner_class(spec)
            if owner is None:
                bound.append(spec.fn)
                continue
            if owner not in owners:
                owners[owner] = owner(deps)
            bound.append(getattr(owners[owner], spec.fn.__name__))
        return bound

    # --- calling, from workflow code ----------------------------------------------

    async def execute(self, fn: Callable[..., Awaitable[R]], *args: Any) -> R:
        """Run a registered activity from a workflow, on the queue it is registered on.

        Its timeouts and retry policy are left unset here: the worker's
        :class:`~durable_temporal_workers.policies.ActivityPolicyInterceptor`
        fills them in from its config, by activity name.
        """
        spec = self._activities.get(fn)
        if spec is None:
            raise RegistryError(f"{fn.__qualname__} is not a registered activity")
        caller = self.workflow_spec(workflow.info().workflow_type)
        use = next((u for u in caller.uses if u.fn is fn), None)
        if use is None:
            # A bug in the workflow code: this fails the workflow task (which
            # retries) rather than the workflow, so a fixed deploy resumes it.
            raise RegistryError(
                f"workflow {caller.name} calls {spec.name} without declaring it in activities="
            )
        result = await workflow.execute_activity(
            spec.name,
            args=args,
            # None keeps the SDK default: the queue this workflow runs on.
            task_queue=use.queue,
            result_type=spec.result_type,
        )
        return typing.cast(R, result)

    # --- internals ----------------------------------------------------------------

    def _on(self, queue: str) -> list[WorkflowSpec]:
        return [s for s in self.workflows() if s.queue == queue]

    def _check(self, wf: WorkflowSpec) -> list[str]:
        problems = []
        for use in wf.uses:
            spec = self._activities.get(use.fn)
            where = f"workflow {wf.name} (queue {wf.queue!r})"
            if spec is None:
                problems.append(
                    f"{where} calls {use.fn.__qualname__}, which is not registered as an "
                    "activity (decorate it with @registry.activity)"
                )
            elif use.queue is None and spec.queue != wf.queue:
                problems.append(
                    f"{where} calls activity {spec.name}, which is registered on queue "
                    f"{spec.queue!r}: declare it as on_queue({spec.queue!r}, ...)"
                )
            elif use.queue is not None and use.queue != spec.queue:
                problems.append(
                    f"{where} calls activity {spec.name} on queue {use.queue!r}, "
                    f"but it is registered on queue {spec.queue!r}"
                )
        return problems


def _owner_class(spec: ActivitySpec) -> type | None:
    """The class that defines a method activity, or None for a plain function."""
    *outer, _ = spec.fn.__qualname__.split(".")
    if not outer:
        return None
    if "<locals>" in outer:
        raise RegistryError(
            f"activity {spec.name}: its class is defined inside a function; "
            "define activity classes at module level"
        )
    owner: Any = sys.modules[spec.fn.__module__]
    for part in outer:
        owner = getattr(owner, part)
    if not isinstance(owner, type):
        raise RegistryError(f"activity {spec.name}: {'.'.join(outer)} is not a class")
    return owner


# The registry of this package's workflows and activities.
registry = Registry()
