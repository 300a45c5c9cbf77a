"""``temporal-workers`` as a process: drain on SIGTERM, connect retries, metrics, CLI."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durable_temporal_workers.config import Config
from durable_temporal_workers.models import LOYALTY, ORDERS, LoyaltyAccount, Order, OrderItem
from durable_temporal_workers.workflows.loyalty import LoyaltyWorkflow
from durable_temporal_workers.workflows.orders import OrderWorkflow

from .conftest import (
    SUBPROCESS_NAMESPACE,
    DevServer,
    activity_attempts,
    console_script,
    free_port,
    on_namespace,
    serving,
    subprocess_env,
)


class Process:
    """A ``temporal-workers`` subprocess whose stderr is collected as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        assert proc.stderr is not None
        self._reader = asyncio.create_task(self._read(proc.stderr))

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> Process:
        proc = await asyncio.create_subprocess_exec(
            console_script(), *args, env=env, stderr=asyncio.subprocess.PIPE
        )
        return cls(proc)

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self.lines.append(line.decode().rstrip())

    async def wait_for_line(self, text: str, within: float = 20.0) -> None:
        try:
            async with asyncio.timeout(within):
                while not any(text in line for line in self.lines):
                    if self.proc.returncode is not None:
                        pytest.fail(f"exited {self.proc.returncode} before {text!r}: {self.lines}")
                    await asyncio.sleep(0.05)
        except TimeoutError:
            pytest.fail(f"no {text!r} in {within}s: {self.lines}")

    async def wait(self, within: float = 30.0) -> int:
        async with asyncio.timeout(within):
            code = await self.proc.wait()
            await self._reader
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
def subprocess_client(workflow_env: WorkflowEnvironment) -> Client:
    return Client(workflow_env.client.service_client, namespace=SUBPROCESS_NAMESPACE)


async def test_sigterm_lets_the_running_activity_finish(
    workflow_env: WorkflowEnvironment,
    config: Config,
    config_file: Path,
    subprocess_client: Client,
    tmp_path: Path,
) -> None:
    env = subprocess_env(
        config_file,
        TEMPORAL_NAMESPACE=SUBPROCESS_NAMESPACE,
        TEMPORAL_WORKERS_STORE_PATH=str(tmp_path / "store.db"),
        TEMPORAL_WORKERS_METRICS_ADDRESS="",
    )
    worker = await Process.start("serve", "--queue", ORDERS, env=env)
    try:
        await worker.wait_for_line("serving queue orders")
        order = Order(
            order_id=f"slow-{uuid.uuid4().hex[:8]}",
            items=[OrderItem("BOOK-1", 1, 1000)],
            address="1 Main Street",
            ship_delay_seconds=3,
        )
        handle = await subprocess_client.start_workflow(
            OrderWorkflow.run, order, id=order.order_id, task_queue=ORDERS
        )

        async def shipping() -> bool:
            pending = (await handle.describe()).raw_description.pending_activities
            return any(
                p.activity_type.name == "ship_order"
                and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                for p in pending
            )

        while not await shipping():
            await asyncio.sleep(0.05)
        worker.proc.send_signal(signal.SIGTERM)
        assert await worker.wait(within=15) == 0
    finally:
        await worker.kill()
    assert any("draining" in line for line in worker.lines)

    # The draining worker reported ship_order's result before it exited...
    history = await handle.fetch_history()
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    completed = [
        scheduled[e.activity_task_completed_event_attributes.scheduled_event_id]
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    ]
    assert completed == ["validate_order", "charge_payment", "ship_order"]

    # ...so a new worker finishes the workflow without running it again.
    sub_config = on_namespace(
        config,
        SUBPROCESS_NAMESPACE,
        store=dataclasses.replace(config.store, path=str(tmp_path / "store.db")),
    )
    async with serving(workflow_env, sub_config, [ORDERS]):
        result = await asyncio.wait_for(handle.result(), 30)
    assert result.status == "COMPLETED"
    assert result.tracking_number.startswith("TRK-")
    assert await activity_attempts(handle, "ship_order") == [1]


async def test_worker_connects_once_the_server_is_up(config_file: Path, tmp_path: Path) -> None:
    port = free_port()
    env = subprocess_env(
        config_file,
        TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
        TEMPORAL_WORKERS_STORE_PATH=str(tmp_path / "store.db"),
        TEMPORAL_WORKERS_METRICS_ADDRESS="",
        TEMPORAL_WORKERS_CONNECT_MAX_SECONDS="60",
    )
    worker = await Process.start("serve", "--queue", LOYALTY, env=env)
    server = DevServer(port, tmp_path)
    try:
        await worker.wait_for_line("cannot connect to Temporal")
        await worker.wait_for_line("retrying in")
        await asyncio.to_thread(server.start)
        await worker.wait_for_line("connected to Temporal", within=30)
        client = await Client.connect(f"127.0.0.1:{port}")
        handle = await client.start_workflow(
            LoyaltyWorkflow.run, LoyaltyAccount("late"), id="late", task_queue=LOYALTY
        )
        assert "1 point," in await handle.execute_update("addLoyaltyPoint")
        worker.proc.send_signal(signal.SIGTERM)
        assert await worker.wait() == 0
    finally:
        await worker.kill()
        await asyncio.to_thread(server.stop)


async def test_worker_gives_up_connecting(config_file: Path, tmp_path: Path) -> None:
    env = subprocess_env(
        config_file,
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        TEMPORAL_WORKERS_STORE_PATH=str(tmp_path / "store.db"),
        TEMPORAL_WORKERS_METRICS_ADDRESS="",
        TEMPORAL_WORKERS_CONNECT_ATTEMPTS="2",
    )
    worker = await Process.start("serve", env=env)
    assert await worker.wait() == 1
    assert any("after 2 attempts" in line for line in worker.lines)


async def test_metrics_endpoint_serves_sdk_metrics(client: Client, config: Config) -> None:
    order = Order(f"m-{uuid.uuid4().hex[:8]}", [OrderItem("A", 1, 1)], address="here")
    await client.execute_workflow(OrderWorkflow.run, order, id=order.order_id, task_queue=ORDERS)
    url = f"http://{config.metrics.bind_address}/metrics"

    def scrape() -> tuple[str, str]:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.headers["Content-Type"], response.read().decode()

    content_type, body = await asyncio.to_thread(scrape)
    assert content_type.startswith("text/plain")
    names = {line.split("{")[0].split()[0] for line in body.splitlines() if line[:1].isalpha()}
    assert any(name.startswith("temporal_") for name in names)
    assert "temporal_workflow_completed" in names
    # One endpoint for all the queues of the process.
    for queue in ("orders", "sagas", "stateful-machines", "loyalty"):
        assert f'task_queue="{queue}"' in body


async def test_a_one_queue_process_binds_its_queue_metrics_address(
    config_file: Path, subprocess_client: Client, tmp_path: Path
) -> None:
    """How the worker role runs one service per queue from one config file."""
    shared, own, other = free_port(), free_port(), free_port()
    env = subprocess_env(
        config_file,
        TEMPORAL_NAMESPACE=SUBPROCESS_NAMESPACE,
        TEMPORAL_WORKERS_STORE_PATH=str(tmp_path / "store.db"),
        TEMPORAL_WORKERS_METRICS_ADDRESS=f"127.0.0.1:{shared}",
        TEMPORAL_WORKERS__METRICS__QUEUE_BIND_ADDRESSES=(
            f"{{{LOYALTY}: '127.0.0.1:{own}', {ORDERS}: '127.0.0.1:{other}'}}"
        ),
    )
    worker = await Process.start("serve", "--queue", LOYALTY, env=env)
    try:
        await worker.wait_for_line("serving queue loyalty")
        handle = await subprocess_client.start_workflow(
            LoyaltyWorkflow.run,
            LoyaltyAccount("metrics"),
            id=f"metrics-{uuid.uuid4().hex[:8]}",
            task_queue=LOYALTY,
        )
        assert "1 point," in await handle.execute_update("addLoyaltyPoint")

        def scrape(port: int) -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return str(r.read().decode())

        assert 'task_queue="loyalty"' in await asyncio.to_thread(scrape, own)
        for unused in (shared, other):
            with pytest.raises(urllib.error.URLError, match="Connection refused"):
                await asyncio.to_thread(scrape, unused)
        worker.proc.send_signal(signal.SIGTERM)
        assert await worker.wait() == 0
    finally:
        await worker.kill()


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        console_script(),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_console_script_lists_queues(config_file: Path) -> None:
    code, out, _ = await run_cli("queues", env=subprocess_env(config_file))
    assert code == 0
    assert out.splitlines() == ["loyalty", "orders", "sagas", "stateful-machines"]


async def test_cli_drives_workflows(client: Client, config_file: Path) -> None:
    env = subprocess_env(config_file)
    order_id = f"cli-{uuid.uuid4().hex[:8]}"
    items = json.dumps([{"sku": "A-1", "quantity": 2, "unit_price_cents": 1250}])
    code, out, err = await run_cli(
        "order", "--id", order_id, "--items-json", items, "--address", "1 Main St", env=env
    )
    assert code == 0, err
    outcome = json.loads(out)
    assert outcome["status"] == "COMPLETED"
    assert outcome["result"]["amount_cents"] == 2500

    code, out, err = await run_cli("order", "--items-json", "[]", "--address", "x", env=env)
    assert code == 1
    assert json.loads(out)["error"]["type"] == "InvalidOrder"
    assert "InvalidOrder: order order-" in err
    assert "no items" in err

    code, out, err = await run_cli(
        "start", "order", "--input", json.dumps({"order_id": "x", "itemz": []}), env=env
    )
    assert code == 2
    assert "unknown field 'itemz'" in err

    machine = f"cli-machine-{uuid.uuid4().hex[:8]}"
    assert (await run_cli("machine", "start", "--id", machine, env=env))[0] == 0
    assert (await run_cli("machine", "signal", "--id", machine, "setUp", env=env))[0] == 0
    for _ in range(100):
        code, out, _ = await run_cli("machine", "status", "--id", machine, env=env)
        if json.loads(out)["state"] == "UP":
            break
    assert json.loads(out) == {"workflow_id": machine, "state": "UP"}
    await run_cli("machine", "signal", "--id", machine, "complete", env=env)
    code, out, _ = await run_cli("machine", "result", "--id", machine, env=env)
    assert json.loads(out)["result"] == "UP"

    customer = f"cli-customer-{uuid.uuid4().hex[:8]}"
    code, _, err = await run_cli(
        "loyalty", "start", "--id", customer, "--gold-threshold", "2", env=env
    )
    assert code == 0, err
    await run_cli("loyalty", "add-point", "--id", customer, env=env)
    code, out, _ = await run_cli("loyalty", "add-point", "--id", customer, env=env)
    assert "Gold" in json.loads(out)["message"]
    code, out, _ = await run_cli("loyalty", "message", "--id", customer, env=env)
    assert "Gold" in json.loads(out)["message"]
    await client.get_workflow_handle(customer).terminate("test done")

    alice, bob = f"cli-alice-{uuid.uuid4().hex[:6]}", f"cli-bob-{uuid.uuid4().hex[:6]}"
    seed = json.dumps({alice: 1000, bob: 0})
    code, out, err = await run_cli("seed-accounts", "--balances-json", seed, env=env)
    assert code == 0, err
    code, out, err = await run_cli(
        "transfer", "--from", alice, "--to", bob, "--amount", "300", env=env
    )
    assert code == 0, err
    code, out, err = await run_cli(
        "transfer", "--from", alice, "--to", bob, "--amount", "5000", env=env
    )
    assert code == 1
    assert "InsufficientFunds" in err
    code, out, _ = await run_cli("balances", env=env)
    report = json.loads(out)
    assert report["accounts"][alice] == 700
    assert report["accounts"][bob] == 300
    assert report["total_cents"] == sum(report["accounts"].values())
    assert report["side_effects"]["duplicated"] == 0
    code, out, _ = await run_cli("balances", "--direct", env=env)
    assert json.loads(out)["accounts"][alice] == 700
