#!/usr/bin/env python3
r"""Fault and load test of a deployed stack: a bounded batch of workflows survives the failures
operators see, with nothing lost, no side effect applied twice and the money conserved.

It seeds accounts, starts a batch of OrderWorkflow and TransferMoneyWorkflow runs (some designed
to fail: invalid orders, transfers refused for lack of funds or compensated after the credit
keeps failing), and while they run injects the --fault commands in order: the first --fault-delay
seconds after the first start, each later one once the batch has progressed by its share (with n
faults, fault i waits until at most (n - i) / n of the batch is still running). Then it waits for
the batch and prints: started, completed, failed as designed, lost, duplicated side effects, and
the money total before and after. It exits non-zero unless lost and duplicated are 0 and the
totals are equal.

With --history-metrics (each history service's Prometheus endpoint) and --shards, it also reads
which service owns how many history shards from the services' own numshards_gauge, before the
first fault and after each one, until all shards are owned again; after a fault named by
--expect-move (a server host stopped), until they are owned in another split than before it; after
one named by --recover (a history service killed, a host started), until every history service owns
shards again. This is reported, not judged.

The batch asks the workers to fail on purpose (fail_times, fail_after_commit_times), which they refuse
unless fault injection is on (temporal_worker_fault_injection in the worker role); a first transfer
checks that and stops the test with that advice before the batch starts.

The faults are shell commands, so the test runs against any deployment. Needs the temporalio SDK
and the bundled workers package (this repository's venv has both).

  python tests/fault/fault_load.py --address 172.30.67.12:7233 \
    --tls-ca ca.pem --tls-cert client.pem --tls-key client-key.pem \
    --history-metrics server1=http://172.30.67.11:9234/metrics \
    --history-metrics server2=http://172.30.67.12:9234/metrics --shards 8 \
    --fault 'history killed on server1=docker exec server1 systemctl kill --signal=SIGKILL temporal-server@history' \
    --fault 'server1 stopped=docker stop --time 90 server1' \
    --fault 'server1 started=docker start server1' \
    --expect-move 'server1 stopped' --recover 'server1 started'
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from durable_temporal_workers import connection
from durable_temporal_workers.config.schema import TlsConfig
from durable_temporal_workers.models import ORDERS, SAGAS, BalancesReport, Order, OrderItem, SeedAccounts, Transfer
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, TLSConfig

ACCOUNT_BALANCE_CENTS = 100_000
T = TypeVar("T")
# Failure types that a designed-to-fail workflow may end with.
DESIGNED_ORDER_FAILURES = {"InvalidOrder", "InvalidInput"}
DESIGNED_TRANSFER_FAILURES = {"TransferFailed"}
# One series of the history service's gauge of the shards it owns, with any labels (a quoted value
# may hold spaces or braces) and its value.
SHARD_SERIES = re.compile(r'^numshards_gauge(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)')


@dataclass
class Planned:
    workflow_id: str
    workflow: str
    queue: str
    arg: Any
    # Failure types this run is designed to end with; empty means it must complete.
    designed_failures: set[str] = field(default_factory=set)


@dataclass
class Figures:
    # The batch's workflow IDs all start with "<run>-".
    run: str = ""
    started: int = 0
    completed: int = 0
    failed_as_designed: int = 0
    lost: int = 0
    lost_ids: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    deduplicated_side_effects: int = 0
    duplicated_side_effects: int = 0
    unbalanced_accounts: list[str] = field(default_factory=list)
    money_before_cents: int = 0
    money_after_cents: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)
    # {"after": fault label or "before", "owners": {endpoint label: shards}, "settled", "seconds"}
    shard_owners: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated_side_effects == 0
            and not self.unbalanced_accounts
            and self.money_before_cents == self.money_after_cents
            and self.started == self.completed + self.failed_as_designed
        )


def plan_batch(
    run: str, orders: int, transfers: int, accounts: list[str], ship_delay: float, hold: int = 0
) -> list[Planned]:
    batch = []
    for n in range(orders):
        # One order in twenty has an item with quantity 0: refused by validation, on purpose.
        invalid = n % 20 == 7
        # One in ten loses the reply of its charge once: the retry must find the charge, not repeat it.
        lost_reply = {"charge_payment": 1} if n % 10 == 4 else {}
        order = Order(
            order_id=f"{run}-order-{n}",
            items=[
                OrderItem(
                    sku=f"sku-{n % 13}",
                    quantity=0 if invalid else 1 + n % 3,
                    unit_price_cents=250 + n % 50,
                )
            ],
            address=f"{n} Durable Street",
            email=f"customer{n}@example.com",
            ship_delay_seconds=ship_delay,
            hold_seconds=hold,
            fail_after_commit_times=lost_reply,
        )
        batch.append(
            Planned(
                order.order_id,
                "OrderWorkflow",
                ORDERS,
                order,
                DESIGNED_ORDER_FAILURES if invalid else set(),
            )
        )
    for n in range(transfers):
        source, target = accounts[n % len(accounts)], accounts[(n * 7 + 1) % len(accounts)]
        if source == target:
            target = accounts[(n + 1) % len(accounts)]
        amount, fail_times = 100 + n % 400, {}
        designed: set[str] = set()
        if n % 10 == 3:
            # More than any account holds: the debit is refused, nothing to compensate.
            amount, designed = (
                ACCOUNT_BALANCE_CENTS * len(accounts) * 10,
                DESIGNED_TRANSFER_FAILURES,
            )
        elif n % 10 == 8:
            # The credit fails every attempt: the debit must be refunded.
            fail_times, designed = {"credit": 1000}, DESIGNED_TRANSFER_FAILURES
        transfer = Transfer(from_account=source, to_account=target, amount_cents=amount, fail_times=fail_times)
        batch.append(Planned(f"{run}-transfer-{n}", "TransferMoneyWorkflow", SAGAS, transfer, designed))
    return batch


async def retrying(what: str, call: Callable[[], Awaitable[T]], seconds: float = 180.0) -> T:
    """Calls that must get through a server restart retry until it is back."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await call()
        except RPCError as err:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what}: still failing after {seconds:.0f} s: {err}") from err
            await asyncio.sleep(1.0)


async def run_tool_workflow(client: Client, workflow: str, arg: Any, result_type: type[Any], run: str) -> Any:
    async def call() -> Any:
        return await client.execute_workflow(
            workflow,
            *([arg] if arg is not None else []),
            id=f"{run}-{workflow}-{uuid.uuid4().hex[:8]}",
            task_queue=SAGAS,
            result_type=result_type,
        )

    return await retrying(workflow, call)


async def start_all(client: Client, batch: list[Planned], parallel: int) -> list[WorkflowHandle[Any, Any]]:
    gate = asyncio.Semaphore(parallel)

    async def start(planned: Planned) -> WorkflowHandle[Any, Any]:
        async with gate:
            # USE_EXISTING: a start retried after an ambiguous error finds the first one.
            return await retrying(
                f"start {planned.workflow_id}",
                lambda: client.start_workflow(
                    planned.workflow,
                    planned.arg,
                    id=planned.workflow_id,
                    task_queue=planned.queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                ),
            )

    return await asyncio.gather(*(start(planned) for planned in batch))


def failure_types(err: BaseException) -> set[str]:
    types: set[str] = set()
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type:
            types.add(cause.type)
        cause = cause.__cause__
    return types


async def outcome(client: Client, planned: Planned, deadline: float, gate: asyncio.Semaphore) -> str:
    """completed, designed:<type>, or lost:<why>."""
    handle = client.get_workflow_handle(planned.workflow_id)
    async with gate:
        while True:
            try:
                await asyncio.wait_for(handle.result(), timeout=max(1.0, deadline - time.monotonic()))
            except WorkflowFailureError as err:
                types = failure_types(err)
                designed = types & planned.designed_failures
                return f"designed:{min(designed)}" if designed else f"lost:failed {sorted(types) or err}"
            except TimeoutError:
                return "lost:still running at the deadline"
            except RPCError:
                if time.monotonic() > deadline:
                    return "lost:unreachable at the deadline"
                await asyncio.sleep(1.0)
                continue
            return "lost:completed but designed to fail" if planned.designed_failures else "completed"


async def require_fault_injection(client: Client, run: str, accounts: list[str]) -> None:
    """One cent moved by a transfer whose credit fails once: refused when the workers' fault injection is off."""
    transfer = Transfer(from_account=accounts[0], to_account=accounts[1], amount_cents=1, fail_times={"credit": 1})
    try:
        await run_tool_workflow(client, "TransferMoneyWorkflow", transfer, dict, run)
    except WorkflowFailureError as err:
        if "InvalidInput" in failure_types(err):
            raise SystemExit(
                "the workers refuse injected failures: deploy them with temporal_worker_fault_injection: true "
                "(faults.enabled in their config.yaml) to run this test"
            ) from err
        raise


def shell(label: str, command: str, timeout: float = 300.0) -> dict[str, Any]:
    began = time.monotonic()
    result = subprocess.run(command, shell=True, capture_output=True, text=True, check=False, timeout=timeout)
    step = {
        "label": label,
        "command": command,
        "rc": result.returncode,
        "seconds": round(time.monotonic() - began, 1),
    }
    print(f"  fault {label!r}: {command} -> rc {result.returncode} ({step['seconds']} s)", flush=True)
    if result.returncode != 0:
        raise RuntimeError(f"fault {label!r} failed: {command}: {result.stderr.strip()}")
    return step


def shards_in(metrics: str) -> int:
    """The shards one history service owns: the sum of every numshards_gauge series it publishes."""
    total = 0.0
    for line in metrics.splitlines():
        match = SHARD_SERIES.match(line)
        if match:
            value = float(match[1])
            total += value if math.isfinite(value) else 0.0
    return round(total)


def shards_owned(url: str) -> int:
    """0 when the endpoint does not answer: a stopped host or a killed history service owns nothing."""
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return shards_in(response.read().decode("utf-8", "replace"))
    except (OSError, http.client.HTTPException, ValueError):
        return 0


async def sample_shards(
    endpoints: dict[str, str],
    shards: int,
    settle: float,
    after: str,
    *,
    read: Callable[[str], int] = shards_owned,
    interval: float = 1.0,
    moved_from: dict[str, int] | None = None,
    recover: bool = False,
) -> dict[str, Any]:
    """Samples every endpoint each interval until they own all the shards, with the same split twice in
    a row, or `settle` seconds have passed. With `moved_from` (the split before a fault expected to move
    shards), only a split other than that one settles. With `recover`, only a split in which every
    endpoint owns shards settles: a host starting again, or a killed service restarted, owns nothing at
    first, and the next fault should find the cluster whole.

    A history service re-records its gauge only when it acquires shards (on a membership change and
    periodically), so one endpoint's value can be stale: only the sum reaching the cluster's shard
    count says the shards have found their owners again.
    """
    began, previous = time.monotonic(), None
    while True:
        # In threads, each bounded by its timeout: an unreachable host must not hold the event loop
        # (starts and waits of the batch) nor the other endpoints.
        counts = await asyncio.gather(*(asyncio.to_thread(read, url) for url in endpoints.values()))
        owners = dict(zip(endpoints, counts, strict=True))
        settled = sum(counts) == shards and owners == previous and owners != moved_from and (not recover or all(counts))
        elapsed = time.monotonic() - began
        if settled or elapsed >= settle:
            sample = {
                "after": after,
                "owners": owners,
                "settled": settled,
                "seconds": round(elapsed, 1),
            }
            return sample | ({"moved": owners != moved_from} if moved_from is not None else {})
        previous = owners
        await asyncio.sleep(interval)


async def running(client: Client, run: str) -> int:
    try:
        count = await client.count_workflows(f'WorkflowId STARTS_WITH "{run}-" AND ExecutionStatus = "Running"')
    except RPCError:
        return -1
    return count.count


async def inject_faults(
    args: argparse.Namespace,
    figures: Figures,
    client: Client,
    run: str,
    batch_size: int,
    *,
    started: asyncio.Event,
) -> None:
    # The first fault lands --fault-delay after the first start. Each later one waits until the
    # running workflows have fallen to its share of the batch (and at least --fault-gap), so
    # every fault lands on work in flight however fast this machine and these workers are:
    # fixed gaps let a fast run finish before the last fault.
    for index, (label, command) in enumerate(args.fault):
        if index == 0:
            await asyncio.sleep(args.fault_delay)
        else:
            await asyncio.sleep(args.fault_gap)
            await started.wait()
            share = 1 - index / len(args.fault)
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline and await running(client, run) > share * batch_size:
                await asyncio.sleep(0.5)
        # Shows the fault landed while the batch was running.
        in_flight = await running(client, run)
        step = await asyncio.to_thread(shell, label, command, args.fault_timeout)
        # And after it: a fault that takes its time (a roll-out) shows the batch still ran when it ended.
        figures.faults.append(step | {"running_workflows": in_flight, "running_after": await running(client, run)})
        if args.history_metrics:
            moved_from = (
                figures.shard_owners[-1]["owners"] if label in args.expect_move and figures.shard_owners else None
            )
            figures.shard_owners.append(
                await sample_shards(
                    args.history_metrics,
                    args.shards,
                    args.shard_settle,
                    label,
                    moved_from=moved_from,
                    recover=label in args.recover,
                )
            )


def tls_config(args: argparse.Namespace) -> TLSConfig | bool:
    """mTLS with a client certificate, TLS checking the server against --tls-ca alone, else plain: as the workers
    themselves connect (their temporal.tls settings)."""
    tls = TlsConfig(
        ca_file=args.tls_ca, cert_file=args.tls_cert, key_file=args.tls_key, server_name=args.tls_server_name
    )
    return connection.tls_config(tls)


async def main(args: argparse.Namespace) -> Figures:
    began = time.monotonic()
    run = f"fault-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(args.address, namespace=args.namespace, tls=tls_config(args))
    accounts = [f"{run}-acct-{n}" for n in range(args.accounts)]
    figures = Figures(run=run)

    await run_tool_workflow(
        client,
        "SeedAccountsWorkflow",
        SeedAccounts({a: ACCOUNT_BALANCE_CENTS for a in accounts}),
        dict,
        run,
    )
    await require_fault_injection(client, run, accounts)
    before: BalancesReport = await run_tool_workflow(client, "BalancesWorkflow", None, BalancesReport, run)
    figures.money_before_cents = sum(before.accounts[a] for a in accounts)
    print(
        f"{run}: {args.accounts} accounts seeded, {figures.money_before_cents} cents in all",
        flush=True,
    )

    if args.history_metrics:
        figures.shard_owners.append(await sample_shards(args.history_metrics, args.shards, args.shard_settle, "before"))
    batch = plan_batch(run, args.orders, args.transfers, accounts, args.ship_delay, args.hold)
    started = asyncio.Event()
    faults = asyncio.create_task(inject_faults(args, figures, client, run, len(batch), started=started))
    await start_all(client, batch, args.parallel_starts)
    started.set()
    figures.started = len(batch)
    print(
        f"{run}: started {figures.started} workflows ({args.orders} orders, {args.transfers} transfers)",
        flush=True,
    )
    await faults

    deadline = time.monotonic() + args.timeout
    gate = asyncio.Semaphore(args.parallel_waits)
    outcomes = await asyncio.gather(*(outcome(client, planned, deadline, gate) for planned in batch))
    for planned, result in zip(batch, outcomes, strict=True):
        if result == "completed":
            figures.completed += 1
        elif result.startswith("designed:"):
            figures.failed_as_designed += 1
        else:
            figures.lost += 1
            figures.lost_ids.append(f"{planned.workflow_id}: {result[5:]}")
    figures.outcomes = dict(Counter(outcomes))

    after: BalancesReport = await run_tool_workflow(client, "BalancesWorkflow", None, BalancesReport, run)
    figures.money_after_cents = sum(after.accounts[a] for a in accounts)
    # The store's counters cover every run; this run's retries are the difference.
    figures.deduplicated_side_effects = after.side_effects.deduplicated - before.side_effects.deduplicated
    figures.duplicated_side_effects = after.side_effects.duplicated
    figures.unbalanced_accounts = after.side_effects.unbalanced_accounts
    figures.seconds = round(time.monotonic() - began, 1)
    return figures


def report(figures: Figures) -> None:
    print(f"started:                   {figures.started}")
    print(f"completed:                 {figures.completed}")
    print(f"failed as designed:        {figures.failed_as_designed}")
    print(f"lost:                      {figures.lost}")
    for lost in figures.lost_ids[:20]:
        print(f"  {lost}")
    for fault in figures.faults:
        print(f"fault with {fault['running_workflows']:>4} running: {fault['label']}: {fault['command']}")
    for sample in figures.shard_owners:
        when = "before the faults" if sample["after"] == "before" else f"after {sample['after']!r}"
        owners = ", ".join(f"{label} {count}" for label, count in sample["owners"].items())
        state = "settled in" if sample["settled"] else "not settled after"
        print(f"shards {when}: {owners} ({state} {sample['seconds']} s)")
    print(f"duplicated side effects:   {figures.duplicated_side_effects}")
    print(f"retries deduplicated:      {figures.deduplicated_side_effects}")
    print(f"money before (cents):      {figures.money_before_cents}")
    print(f"money after (cents):       {figures.money_after_cents}")
    print(f"unbalanced accounts:       {len(figures.unbalanced_accounts)}")
    print(f"wall time (s):             {figures.seconds}")
    print("RESULT " + json.dumps(asdict(figures) | {"ok": figures.ok}, sort_keys=True))


def labelled(text: str) -> tuple[str, str]:
    """LABEL=VALUE, split at the first '=': a command or URL may hold more."""
    label, _, value = text.partition("=")
    if not label.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected LABEL=VALUE, got {text!r}")
    return label.strip(), value.strip()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", required=True, help="Temporal frontend, host:port")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--tls-ca", help="PEM file of the CA the frontend's certificate is checked against")
    parser.add_argument("--tls-cert", help="PEM file of the client certificate (mTLS), with --tls-key")
    parser.add_argument("--tls-key", help="PEM file of the client certificate's private key")
    parser.add_argument("--tls-server-name", help="name checked in the frontend's certificate, if not the address's")
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--transfers", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument(
        "--ship-delay",
        type=float,
        default=1.0,
        help="seconds ship_order takes, so kills land mid-activity",
    )
    parser.add_argument(
        "--hold",
        type=int,
        default=0,
        help="seconds each order waits on a durable timer between its charge and its shipment",
    )
    parser.add_argument(
        "--fault",
        type=labelled,
        action="append",
        default=[],
        metavar="LABEL=COMMAND",
        help="shell command injecting a fault, named LABEL (repeatable; run in the order given)",
    )
    parser.add_argument(
        "--fault-timeout",
        type=float,
        default=300.0,
        help="seconds a fault's command may take (one that waits for a roll-out to reach a step may take long)",
    )
    parser.add_argument(
        "--fault-delay",
        type=float,
        default=5.0,
        help="seconds from the first start to the first fault",
    )
    parser.add_argument(
        "--fault-gap",
        type=float,
        default=3.0,
        help="at least this many seconds between faults; with n faults, fault i (from 0) also waits until "
        "at most (n - i) / n of the batch is still running",
    )
    parser.add_argument(
        "--history-metrics",
        type=labelled,
        action="append",
        default=[],
        metavar="LABEL=URL",
        help="Prometheus endpoint of a history service (repeatable: one per server host); its numshards_gauge "
        "says how many shards it owns",
    )
    parser.add_argument("--shards", type=int, help="the cluster's numHistoryShards, with --history-metrics")
    parser.add_argument(
        "--shard-settle",
        type=float,
        default=120.0,
        help="seconds to wait, before the faults and after each, for all shards to be owned again",
    )
    parser.add_argument(
        "--expect-move",
        action="append",
        default=[],
        metavar="LABEL",
        help="a fault after which the shards should change owners (a server host stopped or started): its sample "
        "settles only on a split other than the one before it",
    )
    parser.add_argument(
        "--recover",
        action="append",
        default=[],
        metavar="LABEL",
        help="a fault after which every history service should own shards again (a killed service restarted, a host "
        "started): its sample settles only then, so the next fault finds the cluster whole",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds to wait for the batch after the faults",
    )
    parser.add_argument("--parallel-starts", type=int, default=50)
    parser.add_argument("--parallel-waits", type=int, default=200)
    args = parser.parse_args(argv)
    if not args.fault:
        parser.error("say how to inject at least one fault: --fault 'LABEL=SHELL COMMAND'")
    if len({label for label, _ in args.fault}) < len(args.fault):
        parser.error("each --fault needs its own label: the report names faults by it")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_server_name and not (args.tls_cert or args.tls_ca):
        parser.error("--tls-server-name needs --tls-ca or --tls-cert and --tls-key")
    endpoints = dict(args.history_metrics)
    if len(endpoints) < len(args.history_metrics):
        parser.error("each --history-metrics needs its own label")
    if endpoints and (args.shards is None or args.shards < 1):
        parser.error("--history-metrics needs --shards, the cluster's number of history shards (at least 1)")
    if args.shards is not None and not endpoints:
        parser.error("--shards goes with --history-metrics")
    args.history_metrics = endpoints
    unknown = set(args.expect_move + args.recover) - {label for label, _ in args.fault}
    if unknown:
        parser.error(f"--expect-move and --recover name no --fault label: {', '.join(sorted(unknown))}")
    if (args.expect_move or args.recover) and not endpoints:
        parser.error("--expect-move and --recover go with --history-metrics")
    if args.orders < 1 or args.transfers < 1 or args.accounts < 2:
        parser.error("--orders and --transfers must be at least 1, --accounts at least 2")
    return args


if __name__ == "__main__":
    figures = asyncio.run(main(parse(sys.argv[1:])))
    report(figures)
    sys.exit(0 if figures.ok else 1)
