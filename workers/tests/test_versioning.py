"""Worker versioning: a versioned worker polls as its build, and its workflows stay on it."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import VersioningBehavior
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from durable_temporal_workers.config import Config, ConfigError, load_config
from durable_temporal_workers.models import COMPLETE, MACHINES, SET_UP
from durable_temporal_workers.worker import deployment_config
from durable_temporal_workers.workflows.machines import MachineOperatorWorkflow

from .conftest import VERSIONED_NAMESPACE, on_namespace, serving

DEPLOYMENT = "test-workers"


def versioned(config: Config, build_id: str) -> Config:
    worker = dataclasses.replace(config.worker, deployment_name=DEPLOYMENT, build_id=build_id)
    return on_namespace(config, VERSIONED_NAMESPACE, worker=worker)


def test_the_unit_environment_names_the_version() -> None:
    env = {
        "TEMPORAL_DEPLOYMENT_NAME": DEPLOYMENT,
        "TEMPORAL_WORKER_BUILD_ID": "1.2.0",
        "TEMPORAL_VERSIONING_BEHAVIOR": "auto_upgrade",
        "TEMPORAL_WORKERS_METRICS_ENABLED": "false",
    }
    config = load_config(None, env=env)
    options = deployment_config(config)
    assert options is not None
    assert (options.version.deployment_name, options.version.build_id) == (DEPLOYMENT, "1.2.0")
    assert options.default_versioning_behavior == VersioningBehavior.AUTO_UPGRADE
    assert config.metrics.address_for(["orders"]) is None
    assert deployment_config(load_config(None, env={})) is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TEMPORAL_WORKER_BUILD_ID": "1.0"}, "deployment_name and build_id must be set together"),
        (
            {"TEMPORAL_DEPLOYMENT_NAME": DEPLOYMENT, "TEMPORAL_WORKER_BUILD_ID": "1.0 beta"},
            "worker.build_id: must be letters",
        ),
        (
            {
                "TEMPORAL_DEPLOYMENT_NAME": DEPLOYMENT,
                "TEMPORAL_WORKER_BUILD_ID": "1.0",
                "TEMPORAL_VERSIONING_BEHAVIOR": "sticky",
            },
            "worker.versioning_behavior: must be one of pinned, auto_upgrade",
        ),
    ],
)
def test_bad_versioning_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(None, env=env)
    assert message in str(error.value)


async def test_a_pinned_workflow_stays_on_the_version_that_started_it(
    workflow_env: WorkflowEnvironment, config: Config
) -> None:
    client = Client(workflow_env.client.service_client, namespace=VERSIONED_NAMESPACE)
    service = client.workflow_service

    async def make_current(build_id: str) -> None:
        # Refused until the build has polled every task queue of the current version (each
        # queue's workflow and activity pollers register apart), so none is left unserved.
        for _ in range(100):
            try:
                await service.set_worker_deployment_current_version(
                    SetWorkerDeploymentCurrentVersionRequest(
                        namespace=VERSIONED_NAMESPACE,
                        deployment_name=DEPLOYMENT,
                        build_id=build_id,
                    )
                )
                return
            except RPCError as error:
                if error.status not in (RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.NOT_FOUND):
                    raise
            await asyncio.sleep(0.2)
        raise AssertionError(f"build {build_id} never became current")

    async with serving(workflow_env, versioned(config, "v1"), [MACHINES]):
        await make_current("v1")
        old = await client.start_workflow(
            MachineOperatorWorkflow.run, "m-old", id="versioned-m-old", task_queue=MACHINES
        )
        await old.signal(SET_UP)
        # Pinned at its first workflow task, by the worker that completes it.
        assert await _build_of(old) == "v1"
        async with serving(workflow_env, versioned(config, "v2"), [MACHINES]):
            await make_current("v2")
            new = await client.start_workflow(
                MachineOperatorWorkflow.run, "m-new", id="versioned-m-new", task_queue=MACHINES
            )
            for handle in (old, new):
                await handle.signal(SET_UP)
                await handle.signal(COMPLETE)
                assert await handle.result() == "UP"
            builds = {handle.id: await _build_of(handle) for handle in (old, new)}
            assert builds == {"versioned-m-old": "v1", "versioned-m-new": "v2"}


async def _build_of(handle: WorkflowHandle[Any, Any]) -> str:
    """The build a workflow runs on, once a worker has completed a workflow task of it."""
    for _ in range(100):
        described = await handle.describe()
        versioning = described.raw_description.workflow_execution_info.versioning_info
        if versioning.deployment_version.build_id:
            return versioning.deployment_version.build_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"{handle.id} never ran a workflow task")
