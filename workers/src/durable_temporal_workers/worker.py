"""Running workers: one per task queue, in one process, with a graceful drain."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from durable_temporal_workers.config import Config
from durable_temporal_workers.connection import connect, make_runtime
from durable_temporal_workers.deps import ActivityDeps
from durable_temporal_workers.faults import FaultInjector
from durable_temporal_workers.policies import ActivityPolicyInterceptor, heartbeat_interval
from durable_temporal_workers.registry import QueuePlan, Registry
from durable_temporal_workers.store import open_store

log = logging.getLogger(__name__)


def deployment_config(config: Config) -> WorkerDeploymentConfig | None:
    """Worker versioning's options, or None for an unversioned worker.

    A versioned worker polls as one build of a Worker Deployment. The server
    sends it only the workflows of its version: those started while it was the
    deployment's current version stay on it (pinned) until they close, so new
    workflow code never replays an old history.
    """
    tuning = config.worker
    if not (tuning.deployment_name and tuning.build_id):
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(tuning.deployment_name, tuning.build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VersioningBehavior[tuning.versioning_behavior.upper()],
    )


def build_workers(
    client: Client,
    config: Config,
    registry: Registry,
    plans: Sequence[QueuePlan],
    deps: ActivityDeps,
) -> list[Worker]:
    interceptor = ActivityPolicyInterceptor(config)
    tuning = config.worker
    # The SDK sends at most one heartbeat per throttle interval (by default 0.8 of the
    # heartbeat timeout), which would leave one late heartbeat no room.
    throttle = heartbeat_interval(config) or timedelta(seconds=60)
    owners: dict[type, object] = {}
    versioning = deployment_config(config)
    workers = []
    for plan in plans:
        workers.append(
            Worker(
                client,
                task_queue=plan.queue,
                workflows=[w.cls for w in plan.workflows],
                activities=registry.bind(plan, deps, owners),
                interceptors=[interceptor],
                workflow_runner=(
                    SandboxedWorkflowRunner() if tuning.sandbox else UnsandboxedWorkflowRunner()
                ),
                max_concurrent_activities=tuning.max_concurrent_activities,
                max_concurrent_workflow_tasks=tuning.max_concurrent_workflow_tasks,
                max_cached_workflows=tuning.max_cached_workflows,
                max_concurrent_activity_task_polls=tuning.max_concurrent_activity_polls,
                max_concurrent_workflow_task_polls=tuning.max_concurrent_workflow_task_polls,
                # On shutdown: stop polling, give running activities this long.
                graceful_shutdown_timeout=timedelta(seconds=tuning.drain_timeout_seconds),
                max_heartbeat_throttle_interval=throttle,
                default_heartbeat_throttle_interval=throttle,
                deployment_config=versioning,
            )
        )
        log.info(
            "serving queue %s%s: workflows [%s], activities [%s]",
            plan.queue,
            f" as {versioning.version.deployment_name}:{versioning.version.build_id}"
            if versioning
            else "",
            ", ".join(w.name for w in plan.workflows),
            ", ".join(a.name for a in plan.activities),
        )
    return workers


async def run_workers(
    config: Config,
    registry: Registry,
    queues: Sequence[str] | None,
    stop: asyncio.Event,
) -> int:
    """Serve ``queues`` until ``stop`` is set, then drain. Returns an exit code.

    Raises RegistryError or StoreUnavailable before connecting when the wiring
    or the store is wrong, and ConnectError when Temporal cannot be reached.
    """
    plans = registry.plan(queues)
    # Local problems (store, metrics port) fail before the wait for the server.
    store = open_store(config.store)
    try:
        deps = ActivityDeps(store=store, faults=FaultInjector(config.faults.activities))
        return await _serve_until_stopped(config, registry, plans, deps, stop)
    finally:
        # After the drain; an activity still running past it fails and is retried elsewhere.
        store.close()


async def _serve_until_stopped(
    config: Config,
    registry: Registry,
    plans: Sequence[QueuePlan],
    deps: ActivityDeps,
    stop: asyncio.Event,
) -> int:
    runtime = make_runtime(config.metrics.address_for([plan.queue for plan in plans]))
    client = await connect(config, runtime, stop)
    if client is None:
        log.info("stopped before connecting")
        return 0
    workers = build_workers(client, config, registry, plans, deps)
    runs = [
        asyncio.create_task(w.run(), name=f"worker-{p.queue}")
        for w, p in zip(workers, plans, strict=True)
    ]
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopping, *runs], return_when=asyncio.FIRST_COMPLETED)
    failed = stopping not in done
    if failed:
        log.error("a worker stopped unexpectedly; shutting the others down")
    else:
        log.info(
            "draining: no new tasks, up to %ss for running activities",
            config.worker.drain_timeout_seconds,
        )
    stopping.cancel()
    await asyncio.gather(
        *(w.shutdown() for w, run in zip(workers, runs, strict=True) if not run.done())
    )
    exit_code = 1 if failed else 0
    for run in runs:
        try:
            await run
        except Exception as err:
            log.error("%s failed: %s", run.get_name(), err)
            exit_code = 1
    log.info("workers stopped")
    return exit_code
