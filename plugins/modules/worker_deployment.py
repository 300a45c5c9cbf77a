#!/usr/bin/python
# Copyright: durable.temporal contributors
# SPDX-License-Identifier: Apache-2.0 (see LICENSE)
"""Worker versioning: makes a build the current version of a Temporal Worker Deployment and reports the others."""

from __future__ import annotations

DOCUMENTATION = r"""
module: worker_deployment
short_description: Make a build the current version of a Temporal Worker Deployment
description:
  - Makes O(build_id) the current version of the Worker Deployment O(deployment_name), through the Temporal Python SDK,
    so that new workflows start on it; workflows pinned to another version stay there until they close.
  - The server accepts a build as current only once its workers poll every task queue of the current version, so no
    queue is left without workers. The module retries for up to O(wait) seconds while the new build's workers come up,
    then fails with the server's reason, changing nothing.
  - Reports every version of the deployment with its status and drainage, so the caller can tell a version that still
    has open pinned workflows (C(draining)) from one that has none (C(drained)) and whose workers can go.
  - Runs on a host whose Python has the C(temporalio) package, such as the virtualenv of the workers (set
    C(ansible_python_interpreter) to its C(bin/python)), as the worker role does.
version_added: 0.1.0
author: durable.temporal maintainers (@durable)
requirements:
  - a Temporal server with worker deployments (1.28 or later)
extends_documentation_fragment:
  - durable.temporal.temporal_client
options:
  deployment_name:
    description: The Worker Deployment, as its workers name it.
    type: str
    required: true
  build_id:
    description: The build to make current.
    type: str
    required: true
  wait:
    description: Seconds to wait for the build's workers to poll every task queue of the current version.
    type: int
    default: 120
attributes:
  check_mode:
    description: Reads the deployment and reports whether the current version would change, changing nothing.
    support: full
  diff_mode:
    description: Shows the current version before and after.
    support: full
seealso:
  - name: Worker Versioning
    description: Worker Deployments, versions, pinned and auto-upgrade workflows, and drainage.
    link: https://docs.temporal.io/worker-versioning
"""

EXAMPLES = r"""
- name: Make build 1.4.0 of the workers the current version
  durable.temporal.worker_deployment:
    address: 127.0.0.1:7233
    deployment_name: durable-workers
    build_id: 1.4.0
  vars:
    ansible_python_interpreter: /opt/temporal-workers/versions/1.4.0/venv/bin/python
  register: deployment

- name: Show the versions that still run pinned workflows
  ansible.builtin.debug:
    msg: "{{ deployment.versions | dict2items | selectattr('value.drainage', 'eq', 'draining') | map(attribute='key') }}"
"""

RETURN = r"""
current:
  description: The current build after the run (what it would be, in check mode).
  returned: always
  type: str
  sample: 1.4.0
previous:
  description: The current build before the run; empty when the deployment was new or unversioned.
  returned: always
  type: str
  sample: 1.3.0
versions:
  description:
    - Per build the server knows, its C(status) (C(inactive), C(current), C(ramping), C(draining), C(drained)) and its
      C(drainage) (C(draining) while pinned workflows are open on it, C(drained) once none are, empty for the current one).
    - The server refreshes drainage on a timer (dynamic config C(matching.wv.VersionDrainageStatusRefreshInterval),
      3 minutes by default), so C(drained) comes that long after the last pinned workflow closed.
  returned: always
  type: dict
  sample:
    1.3.0: {status: draining, drainage: draining}
    1.4.0: {status: current, drainage: ""}
"""

import asyncio
import time
import traceback
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.durable.temporal.plugins.module_utils.temporal_client import CONNECTION_SPEC, connect

try:
    from temporalio.api.enums.v1 import VersionDrainageStatus, WorkerDeploymentVersionStatus
    from temporalio.api.workflowservice.v1 import (
        DescribeWorkerDeploymentRequest,
        SetWorkerDeploymentCurrentVersionRequest,
    )
    from temporalio.service import RPCError, RPCStatusCode
except ImportError:
    TEMPORALIO_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    TEMPORALIO_IMPORT_ERROR = None

ARGUMENT_SPEC = {
    **CONNECTION_SPEC,
    "deployment_name": {"type": "str", "required": True},
    "build_id": {"type": "str", "required": True},
    "wait": {"type": "int", "default": 120},
}


def _short(enum: Any, value: int, prefix: str) -> str:
    name = enum.Name(value)
    return "" if name.endswith("_UNSPECIFIED") else name[len(prefix):].lower()


async def _describe(client: Any, params: dict[str, Any]) -> tuple[str, dict[str, dict[str, str]]]:
    """The current build and every version, or ("", {}) when no worker of the deployment has polled yet."""
    try:
        response = await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=params["namespace"], deployment_name=params["deployment_name"])
        )
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return "", {}
        raise
    info = response.worker_deployment_info
    versions = {
        summary.deployment_version.build_id: {
            "status": _short(WorkerDeploymentVersionStatus, summary.status, "WORKER_DEPLOYMENT_VERSION_STATUS_"),
            "drainage": _short(VersionDrainageStatus, summary.drainage_info.status, "VERSION_DRAINAGE_STATUS_"),
        }
        for summary in info.version_summaries
    }
    return info.routing_config.current_deployment_version.build_id, versions


async def _make_current(client: Any, params: dict[str, Any]) -> None:
    deadline = time.monotonic() + params["wait"]
    while True:
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=params["namespace"],
                    deployment_name=params["deployment_name"],
                    build_id=params["build_id"],
                    identity="durable.temporal.worker_deployment",
                )
            )
            return
        except RPCError as error:
            # NOT_FOUND: no worker of the build has polled yet. FAILED_PRECONDITION: some task queue
            # of the current version has no poller of the build yet. Both pass as its workers start.
            waiting = error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)
            if not waiting or time.monotonic() > deadline:
                raise
        await asyncio.sleep(1)


async def _run(module: AnsibleModule) -> dict[str, Any]:
    params = module.params
    client = await connect(params)
    previous, versions = await _describe(client, params)
    changed = previous != params["build_id"]
    if changed and not module.check_mode:
        await _make_current(client, params)
        versions = (await _describe(client, params))[1]
    result: dict[str, Any] = {
        "changed": changed,
        "current": params["build_id"],
        "previous": previous,
        "versions": versions,
    }
    if module._diff:
        result["diff"] = {"before": {"current": previous}, "after": {"current": params["build_id"]}}
    return result


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if TEMPORALIO_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("temporalio"), exception=TEMPORALIO_IMPORT_ERROR)
    try:
        result = asyncio.run(_run(module))
    except RPCError as error:
        module.fail_json(
            msg=f"Temporal at {module.params['address']} did not make {module.params['deployment_name']}:"
            f"{module.params['build_id']} current: {error.status.name}: {error.message}"
        )
    except (OSError, RuntimeError) as error:
        module.fail_json(msg=f"Cannot reach Temporal at {module.params['address']}: {error}")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
