"""tests/fault/fault_load.py without a cluster: its options, the history services' shard gauge and the
wait for the shards to settle."""

from __future__ import annotations

import asyncio
import functools
import http.server
import importlib.util
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from render import ROOT

pytest.importorskip("durable_temporal_workers")


@pytest.fixture(scope="module")
def fault_load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fault_load", ROOT / "tests" / "fault" / "fault_load.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up while being defined.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


METRICS = """\
# HELP numshards_gauge numshards_gauge gauge
# TYPE numshards_gauge gauge
numshards_gauge{operation="ShardController",service_name="history"} 3
numshards_gauge{operation="odd } label",service_name="history"} 2 1700000000000
numshards_gauge_total 40
other_numshards_gauge 50
"""


def test_the_shards_owned_are_the_sum_of_every_series_of_the_gauge(fault_load: ModuleType) -> None:
    assert fault_load.shards_in(METRICS) == 5
    assert fault_load.shards_in("numshards_gauge 4\n") == 4
    assert fault_load.shards_in("# numshards_gauge 4\nup 1\n") == 0


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "metrics").write_text(METRICS)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    server.server_close()


def test_an_endpoint_is_read_and_one_that_does_not_answer_owns_nothing(fault_load: ModuleType, endpoint: str) -> None:
    assert fault_load.shards_owned(endpoint) == 5
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert fault_load.shards_owned(f"http://127.0.0.1:{port}/metrics") == 0
    assert fault_load.shards_owned("not a url") == 0


def sample(
    fault_load: ModuleType, readings: dict[str, list[int]], shards: int, settle: float, **options: Any
) -> dict[str, Any]:
    """Each endpoint reads its list in turn, then keeps its last value."""
    calls: dict[str, int] = {}

    def read(url: str) -> int:
        calls[url] = calls.get(url, 0) + 1
        return readings[url][min(calls[url], len(readings[url])) - 1]

    endpoints = {url.removeprefix("http://"): url for url in readings}
    result: dict[str, Any] = asyncio.run(
        fault_load.sample_shards(endpoints, shards, settle, "a fault", read=read, interval=0.01, **options)
    )
    return result


def test_shards_settle_once_all_are_owned_with_the_same_split_twice(fault_load: ModuleType) -> None:
    # The survivor's stale gauge first, then its re-acquired shards.
    readings = {"http://one": [4, 0, 0, 0], "http://two": [4, 4, 8, 8]}
    result = sample(fault_load, readings, shards=8, settle=5.0)
    assert result["after"] == "a fault"
    assert result["owners"] == {"one": 0, "two": 8}
    assert result["settled"] is True
    assert result["seconds"] < 5.0


def test_an_expected_move_settles_only_on_another_split(fault_load: ModuleType) -> None:
    # The split of before, still whole twice (the stop not yet seen), then the move.
    readings = {"http://one": [5, 5, 5, 0, 0], "http://two": [3, 3, 3, 8, 8]}
    result = sample(fault_load, readings, shards=8, settle=5.0, moved_from={"one": 5, "two": 3})
    assert (result["owners"], result["settled"], result["moved"]) == ({"one": 0, "two": 8}, True, True)


def test_a_recovery_settles_only_once_every_service_owns_shards(fault_load: ModuleType) -> None:
    # The survivor holds all of them, stable, before the restarted service takes its share back.
    readings = {"http://one": [0, 0, 0, 5, 5], "http://two": [8, 8, 8, 3, 3]}
    result = sample(fault_load, readings, shards=8, settle=5.0, recover=True)
    assert (result["owners"], result["settled"]) == ({"one": 5, "two": 3}, True)
    never = sample(fault_load, {"http://one": [0], "http://two": [8]}, shards=8, settle=0.2, recover=True)
    assert never["settled"] is False


def test_shards_that_never_add_up_are_recorded_as_not_settled(fault_load: ModuleType) -> None:
    result = sample(fault_load, {"http://one": [0], "http://two": [4]}, shards=8, settle=0.2)
    assert result["owners"] == {"one": 0, "two": 4}
    assert result["settled"] is False
    assert result["seconds"] >= 0.2


def test_faults_and_endpoints_are_labelled_and_ordered(fault_load: ModuleType) -> None:
    args = fault_load.parse(
        [
            "--address=h:7233",
            "--fault",
            "history killed=docker exec s1 systemctl kill --signal=SIGKILL temporal-server@history",
            "--fault",
            "s1 stopped=docker stop s1",
            "--history-metrics",
            "s1=http://h1:9234/metrics",
            "--history-metrics",
            "s2=http://h2:9234/metrics",
            "--shards",
            "8",
        ]
    )
    assert args.fault == [
        ("history killed", "docker exec s1 systemctl kill --signal=SIGKILL temporal-server@history"),
        ("s1 stopped", "docker stop s1"),
    ]
    assert args.history_metrics == {"s1": "http://h1:9234/metrics", "s2": "http://h2:9234/metrics"}
    assert (args.orders, args.transfers, args.shard_settle) == (500, 200, 120.0)
    assert fault_load.tls_config(args) is False


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "at least one fault"),
        (["--fault", "no label"], "LABEL=VALUE"),
        (["--fault", "a=x", "--fault", "a=y"], "its own label"),
        (["--fault", "a=x", "--tls-cert", "c.pem"], "go together"),
        (["--fault", "a=x", "--history-metrics", "s1=http://h1/metrics"], "needs --shards"),
        (["--fault", "a=x", "--shards", "8"], "goes with --history-metrics"),
        (["--fault", "a=x", "--docker", "a,b,c"], "unrecognized arguments"),
    ],
)
def test_bad_options_are_refused_with_a_reason(
    fault_load: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    with pytest.raises(SystemExit):
        fault_load.parse(["--address=h:7233", *argv])
    assert says in capsys.readouterr().err


def test_a_client_certificate_gives_mtls(fault_load: ModuleType, tmp_path: Path) -> None:
    for name in ("ca", "cert", "key"):
        (tmp_path / f"{name}.pem").write_bytes(f"{name} PEM".encode())
    args = fault_load.parse(
        [
            "--address=h:7233",
            "--fault=a=x",
            f"--tls-ca={tmp_path / 'ca.pem'}",
            f"--tls-cert={tmp_path / 'cert.pem'}",
            f"--tls-key={tmp_path / 'key.pem'}",
            "--tls-server-name=frontend.example",
        ]
    )
    tls = fault_load.tls_config(args)
    assert (tls.server_root_ca_cert, tls.client_cert, tls.client_private_key, tls.domain) == (
        b"ca PEM",
        b"cert PEM",
        b"key PEM",
        "frontend.example",
    )


def test_a_hold_puts_every_order_on_a_durable_timer_and_leaves_the_transfers_alone(fault_load: ModuleType) -> None:
    args = fault_load.parse(
        ["--address=h:7233", "--fault", "a=x", "--hold", "240", "--orders", "4", "--transfers", "2"]
    )
    batch = fault_load.plan_batch("run", args.orders, args.transfers, ["a1", "a2", "a3"], args.ship_delay, args.hold)
    orders = [planned.arg for planned in batch if planned.workflow == "OrderWorkflow"]
    assert [order.hold_seconds for order in orders] == [240] * 4
    assert len(batch) == 6
    assert {planned.arg.hold_seconds for planned in fault_load.plan_batch("run", 3, 0, ["a1", "a2"], 1.0)} == {0}
