"""The HTTP API against the session's real dev server and in-process workers."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from durable_temporal_workers.api import PROBLEM_JSON, create_app
from durable_temporal_workers.config import Config, load_config
from durable_temporal_workers.store import SqliteStore

from .conftest import TEST_CONFIG, DevServer, console_script, free_port, subprocess_env


def new_order(**changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "order_id": f"order-{uuid.uuid4().hex[:8]}",
        "items": [{"sku": "BOOK-1", "quantity": 2, "unit_price_cents": 1250}],
        "address": "1 Main Street, Springfield",
        "email": "buyer@example.com",
    }
    order.update(changes)
    return order


def http(config: Config) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(config))
    return httpx.AsyncClient(transport=transport, base_url="http://api")


def faults(config: Config, enabled: bool) -> Config:
    return dataclasses.replace(config, faults=dataclasses.replace(config.faults, enabled=enabled))


@pytest.fixture(scope="module")
async def api(config: Config, workers: None) -> AsyncIterator[httpx.AsyncClient]:
    # The production default: fault injection off (the session's workers have it on).
    async with http(faults(config, enabled=False)) as client:
        yield client


async def result(api: httpx.AsyncClient, workflow_id: str) -> dict[str, Any]:
    response = await api.get(f"/workflows/{workflow_id}/result", params={"wait_seconds": 30})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_an_order_placed_over_http_completes(
    api: httpx.AsyncClient, store: SqliteStore
) -> None:
    order = new_order()
    response = await api.post("/orders", json=order)
    assert response.status_code == 202, response.text
    started = response.json()
    assert started["workflow_id"].startswith("order-")
    outcome = await result(api, started["workflow_id"])
    assert outcome["status"] == "COMPLETED"
    assert outcome["workflow_type"] == "OrderWorkflow"
    assert outcome["result"]["amount_cents"] == 2500
    status = (await api.get(f"/workflows/{started['workflow_id']}")).json()
    assert status["status"] == "COMPLETED"
    assert status["result"] == outcome["result"]
    charges = [r.outcome for r in store.requests(f"{started['workflow_id']}:charge_payment")]
    assert charges == ["applied"]


async def test_an_idempotency_key_starts_one_workflow(api: httpx.AsyncClient) -> None:
    key = f"key-{uuid.uuid4().hex}"
    order = new_order()
    first = await api.post("/orders", json=order, headers={"Idempotency-Key": key})
    assert first.status_code == 202
    assert first.json()["workflow_id"] == key
    # Same body, keys in another order and other spacing: the same request.
    again = await api.post(
        "/orders",
        content=json.dumps(dict(reversed(list(order.items()))), indent=3),
        headers={"Idempotency-Key": key},
    )
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    other = await api.post("/orders", json=new_order(), headers={"Idempotency-Key": key})
    assert other.status_code == 409
    assert other.headers["content-type"] == PROBLEM_JSON
    assert (await result(api, key))["status"] == "COMPLETED"
    # Closed, the workflow still answers for its key: no second order.
    late = await api.post("/orders", json=order, headers={"Idempotency-Key": key})
    assert late.status_code == 200
    assert late.json()["run_id"] == first.json()["run_id"]
    # Another workflow type under the same key is another request.
    trip = {"car": "c", "hotel": "h", "flight": "f"}
    assert (
        await api.post("/trips", json=trip, headers={"Idempotency-Key": key})
    ).status_code == 409


async def test_a_fresh_api_process_knows_earlier_keys(
    api: httpx.AsyncClient, config: Config
) -> None:
    key = f"key-{uuid.uuid4().hex}"
    order = new_order()
    assert (
        await api.post("/orders", json=order, headers={"Idempotency-Key": key})
    ).status_code == 202
    async with http(config) as other_process:
        same = await other_process.post("/orders", json=order, headers={"Idempotency-Key": key})
        assert same.status_code == 200
        changed = {**order, "email": "other@example.com"}
        conflict = await other_process.post(
            "/orders", json=changed, headers={"Idempotency-Key": key}
        )
        assert conflict.status_code == 409


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b"not json", ["body"]),
        (b'{"order_id": 7, "items": []}', ["order_id"]),
        (
            b'{"order_id": "o", "items": [{"sku": "A", "quantity": 2.5, '
            b'"unit_price_cents": true}]}',
            ["items[0].quantity", "items[0].unit_price_cents"],
        ),
        (b'{"order_id": "o", "items": [], "colour": "red"}', ["colour"]),
        (b'{"items": []}', ["order_id"]),
        (b'{"order_id": "o", "order_id": "p", "items": []}', ["body"]),
        (('{"order_id": "' + "x" * 201 + '", "items": []}').encode(), ["order_id"]),
        (b'{"order_id": "o", "items": [], "fail_times": {"charge_payment": 1}}', ["fail_times"]),
    ],
)
async def test_invalid_input_is_refused_naming_each_field(
    api: httpx.AsyncClient, body: bytes, fields: list[str]
) -> None:
    response = await api.post("/orders", content=body, headers={"Idempotency-Key": "never-used"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["status"] == 422
    assert [e["field"] for e in problem["errors"]] == fields
    # Nothing was started under the key.
    assert (await api.get("/workflows/never-used")).status_code == 404


async def test_unknown_workflows_answer_404(api: httpx.AsyncClient) -> None:
    missing = f"missing-{uuid.uuid4().hex}"
    for method, path in [
        ("GET", f"/workflows/{missing}"),
        ("GET", f"/workflows/{missing}/result"),
        ("POST", f"/workflows/{missing}/cancel"),
        ("POST", f"/machines/{missing}/signals/setUp"),
        ("GET", f"/machines/{missing}"),
        ("GET", f"/loyalty/{missing}"),
    ]:
        response = await api.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert response.headers["content-type"] == PROBLEM_JSON
    points = await api.post(f"/loyalty/{missing}/points", json={"points": 1})
    assert points.status_code == 404


async def test_cancel_through_the_api(api: httpx.AsyncClient) -> None:
    started = await api.post("/orders", json=new_order(ship_delay_seconds=10))
    workflow_id = started.json()["workflow_id"]
    await asyncio.sleep(0.5)
    cancelled = await api.post(f"/workflows/{workflow_id}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json() == {"workflow_id": workflow_id, "status": "CANCEL_REQUESTED"}
    outcome = await result(api, workflow_id)
    assert outcome["status"] == "CANCELED"
    assert "error" in outcome
    again = await api.post(f"/workflows/{workflow_id}/cancel")
    assert again.status_code == 409


async def test_machine_signals_and_query(api: httpx.AsyncClient) -> None:
    machine = f"machine-{uuid.uuid4().hex[:8]}"
    started = await api.post("/machines", json={"machine_id": machine})
    assert started.status_code == 202
    assert started.json()["workflow_id"] == machine
    assert (await api.post(f"/machines/{machine}/signals/setUp")).status_code == 202
    for _ in range(100):
        state = (await api.get(f"/machines/{machine}")).json()["state"]
        if state == "UP":
            break
        await asyncio.sleep(0.1)
    assert state == "UP"
    assert (await api.post(f"/machines/{machine}/signals/reboot")).status_code == 422
    assert (await api.post(f"/machines/{machine}/signals/complete")).status_code == 202
    outcome = await result(api, machine)
    assert (outcome["status"], outcome["result"]) == ("COMPLETED", "UP")
    # Not a machine: 404, whatever the id.
    order = (await api.post("/orders", json=new_order())).json()["workflow_id"]
    assert (await api.get(f"/machines/{order}")).status_code == 404


async def test_loyalty_update_and_query(api: httpx.AsyncClient) -> None:
    customer = f"customer-{uuid.uuid4().hex[:8]}"
    started = await api.post("/loyalty", json={"customer_id": customer, "gold_threshold": 3})
    assert started.status_code == 202
    added = await api.post(f"/loyalty/{customer}/points", json={"points": 2})
    assert added.status_code == 200, added.text
    assert "2 points" in added.json()["message"]
    gold = await api.post(f"/loyalty/{customer}/points", json={})
    assert "Gold" in gold.json()["message"]
    for bad, field in [({"points": 0}, "points"), ({"points": 2.5}, "points"), ([], "body")]:
        refused = await api.post(f"/loyalty/{customer}/points", json=bad)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == [field]
    query = await api.get(f"/loyalty/{customer}")
    assert query.json()["message"] == gold.json()["message"]


async def test_transfers_trips_and_balances(api: httpx.AsyncClient) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex[:6]}", f"bob-{uuid.uuid4().hex[:6]}"
    seeded = await api.post("/accounts/seed", json={"balances_cents": {alice: 10_000, bob: 0}})
    assert (await result(api, seeded.json()["workflow_id"]))["status"] == "COMPLETED"
    sent = await api.post(
        "/transfers", json={"from_account": alice, "to_account": bob, "amount_cents": 2_550}
    )
    assert (await result(api, sent.json()["workflow_id"]))["status"] == "COMPLETED"
    too_much = await api.post(
        "/transfers", json={"from_account": alice, "to_account": bob, "amount_cents": 1_000_000}
    )
    failed = await result(api, too_much.json()["workflow_id"])
    assert failed["status"] == "FAILED"
    trip = await api.post("/trips", json={"car": "Fiat", "hotel": "Ritz", "flight": "LH 1"})
    booked = await result(api, trip.json()["workflow_id"])
    assert booked["status"] == "COMPLETED"
    assert set(booked["result"]["confirmations"]) == {
        "reserve_car",
        "reserve_hotel",
        "reserve_flight",
    }
    report = await api.get("/balances")
    assert report.status_code == 200
    accounts = report.json()["accounts"]
    assert (accounts[alice], accounts[bob]) == (7_450, 2_550)
    assert report.json()["side_effects"]["duplicated"] == 0


async def test_metrics_count_requests_by_route(api: httpx.AsyncClient) -> None:
    await api.get("/workflows/nothing-here")
    text = (await api.get("/metrics")).text
    line = 'temporal_api_requests_total{method="GET",route="/workflows/{workflow_id}",status="404"}'
    assert line in text
    assert "temporal_api_request_duration_seconds_bucket" in text


async def test_docs_are_served_without_a_cdn(api: httpx.AsyncClient) -> None:
    page = await api.get("/docs")
    assert page.status_code == 200
    assert "/docs/static/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower()
    assert (await api.get("/docs/static/swagger-ui-bundle.js")).status_code == 200
    doc = (await api.get("/openapi.json")).json()
    order = doc["components"]["schemas"]["Order"]
    assert order["properties"]["order_id"]["maxLength"] == 200
    # Fault injection is off: the schema does not offer it.
    assert "fail_times" not in order["properties"]


async def test_503_while_temporal_is_down_then_recovery(tmp_path: Path) -> None:
    server = DevServer(free_port(), tmp_path)
    server.start()
    path = tmp_path / "config.yaml"
    path.write_text(
        TEST_CONFIG.format(address=server.address, metrics_port=free_port(), store=tmp_path / "s")
    )
    config = load_config(path, env={})
    try:
        async with http(config) as api:
            assert (await api.get("/readyz")).status_code == 200
            server.stop()
            for request in (
                api.get("/readyz"),
                api.post("/orders", json=new_order()),
                api.get("/workflows/anything"),
            ):
                response = await request
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "5"
                assert response.headers["content-type"] == PROBLEM_JSON
            assert (await api.get("/healthz")).status_code == 200
            server.start()
            for _ in range(50):
                ready = await api.get("/readyz")
                if ready.status_code == 200:
                    break
                await asyncio.sleep(0.2)
            assert ready.status_code == 200
            started = await api.post("/orders", json=new_order())
            assert started.status_code == 202
    finally:
        server.stop()


async def test_503_when_temporal_was_never_reachable(config: Config) -> None:
    nowhere = dataclasses.replace(
        config, temporal=dataclasses.replace(config.temporal, address=f"127.0.0.1:{free_port()}")
    )
    async with http(nowhere) as api:
        response = await api.post("/orders", json=new_order())
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"


async def test_a_stop_lets_requests_in_flight_finish(
    config_file: Path, api: httpx.AsyncClient
) -> None:
    machine = f"machine-{uuid.uuid4().hex[:8]}"
    assert (await api.post("/machines", json={"machine_id": machine})).status_code == 202
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        console_script(), "api", "--port", str(port), "--graceful-seconds", "15",
        env=subprocess_env(config_file),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as remote:
            for _ in range(100):
                try:
                    if (await remote.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            # A result wait of 3 s on a running machine is in flight when SIGTERM comes.
            waiting = asyncio.create_task(
                remote.get(f"/workflows/{machine}/result", params={"wait_seconds": 3})
            )
            await asyncio.sleep(1)
            proc.terminate()
            answer = await waiting
            assert answer.status_code == 202
            assert answer.json()["status"] == "RUNNING"
        # uvicorn ends by re-raising the SIGTERM once drained, which systemd counts as a clean stop.
        assert await asyncio.wait_for(proc.wait(), 20) in (0, -signal.SIGTERM)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await api.post(f"/machines/{machine}/signals/complete")


async def test_fault_fields_only_when_the_config_turns_fault_injection_on(config: Config) -> None:
    async with http(faults(config, enabled=True)) as api:
        doc = (await api.get("/openapi.json")).json()
        assert "fail_times" in doc["components"]["schemas"]["Order"]["properties"]
        order = new_order(fail_times={"charge_payment": 1})
        started = await api.post("/orders", json=order)
        assert started.status_code == 202, started.text
    async with http(faults(config, enabled=False)) as api:
        refused = await api.post("/orders", json=order)
        assert refused.status_code == 422
        assert [e["field"] for e in refused.json()["errors"]] == ["fail_times"]
