#!/usr/bin/env python3
"""Fault and load test of a deployed stack: a bounded batch of workflows survives the failures
operators see, with nothing lost, no side effect applied twice and the money conserved.

It seeds accounts, starts a batch of OrderWorkflow and TransferMoneyWorkflow runs (some designed
to fail: invalid orders, transfers refused for lack of funds or compensated after the credit
keeps failing), and while they run (each fault once the batch has progressed by a quarter):
  1. kills every worker service of one worker host with SIGKILL (systemd restarts them),
  2. stops the other worker host (a clean shutdown: its workers drain) and starts it again,
  3. restarts the Temporal server.
Then it waits for the batch and prints: started, completed, failed as designed, lost, duplicated
side effects, and the money total before and after. It exits non-zero unless lost and duplicated
are 0 and the totals are equal.

The batch asks the workers to fail on purpose (fail_times, fail_after_commit_times), which they refuse
unless fault injection is on (temporal_worker_fault_injection in the worker role); a first transfer
checks that and stops the test with that advice before the batch starts.

The faults are shell commands, so the test runs against any deployment; --docker SERVER,KILLED,STOPPED
fills them in for hosts that are containers (the molecule scenario's). Needs the temporalio SDK and the
bundled workers package (this repository's venv has both).

  python tests/fault/fault_load.py --address 172.30.66.10:7233 --docker temporal,worker1,worker2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from durable_temporal_workers.models import ORDERS, SAGAS, BalancesReport, Order, OrderItem, SeedAccounts, Transfer
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

ACCOUNT_BALANCE_CENTS = 100_000
T = TypeVar("T")
# Failure types that a designed-to-fail workflow may end with.
DESIGNED_ORDER_FAILURES = {"InvalidOrder", "InvalidInput"}
DESIGNED_TRANSFER_FAILURES = {"TransferFailed"}


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


def plan_batch(run: str, orders: int, transfers: int, accounts: list[str], ship_delay: float) -> list[Planned]:
    batch = []
    for n in range(orders):
        # One order in twenty has an item with quantity 0: refused by validation, on purpose.
        invalid = n % 20 == 7
        # One in ten loses the reply of its charge once: the retry must find the charge, not repeat it.
        lost_reply = {"charge_payment": 1} if n % 10 == 4 else {}
        order = Order(
            order_id=f"{run}-order-{n}",
            items=[OrderItem(sku=f"sku-{n % 13}", quantity=0 if invalid else 1 + n % 3, unit_price_cents=250 + n % 50)],
            address=f"{n} Durable Street",
            email=f"customer{n}@example.com",
            ship_delay_seconds=ship_delay,
            fail_after_commit_times=lost_reply,
        )
        batch.append(
            Planned(order.order_id, "OrderWorkflow", ORDERS, order, DESIGNED_ORDER_FAILURES if invalid else set())
        )
    for n in range(transfers):
        source, target = accounts[n % len(accounts)], accounts[(n * 7 + 1) % len(accounts)]
        if source == target:
            target = accounts[(n + 1) % len(accounts)]
        amount, fail_times = 100 + n % 400, {}
        designed: set[str] = set()
        if n % 10 == 3:
            # More than any account holds: the debit is refused, nothing to compensate.
            amount, designed = ACCOUNT_BALANCE_CENTS * len(accounts) * 10, DESIGNED_TRANSFER_FAILURES
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
    types, cause = set(), err
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


def shell(command: str) -> dict[str, Any]:
    began = time.monotonic()
    result = subprocess.run(command, shell=True, capture_output=True, text=True, check=False, timeout=300)
    step = {"command": command, "rc": result.returncode, "seconds": round(time.monotonic() - began, 1)}
    print(f"  fault: {command} -> rc {result.returncode} ({step['seconds']} s)", flush=True)
    if result.returncode != 0:
        raise RuntimeError(f"fault command failed: {command}: {result.stderr.strip()}")
    return step


async def running(client: Client, run: str) -> int:
    try:
        count = await client.count_workflows(f'WorkflowId STARTS_WITH "{run}-" AND ExecutionStatus = "Running"')
    except RPCError:
        return -1
    return count.count


async def inject_faults(
    args: argparse.Namespace, figures: Figures, client: Client, run: str, batch_size: int, started: asyncio.Event
) -> None:
    # The first fault lands --fault-delay after the first start. Each later one waits until the
    # running workflows have fallen to its share of the batch (and at least --fault-gap), so
    # every fault lands on work in flight however fast this machine and these workers are:
    # fixed gaps let a fast run finish before the last fault.
    later = [(0.75, args.stop_worker_host), (0.5, args.start_worker_host), (0.25, args.restart_server)]

    async def inject(command: str) -> None:
        # Shows the fault landed while the batch was running.
        in_flight = await running(client, run)
        figures.faults.append(await asyncio.to_thread(shell, command) | {"running_workflows": in_flight})

    await asyncio.sleep(args.fault_delay)
    await inject(args.kill_workers)
    for share, command in later:
        await asyncio.sleep(args.fault_gap)
        await started.wait()
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and await running(client, run) > share * batch_size:
            await asyncio.sleep(0.5)
        await inject(command)


def docker_faults(args: argparse.Namespace) -> None:
    server, killed, stopped = (shlex.quote(name) for name in args.docker.split(","))
    args.kill_workers = args.kill_workers or f"docker exec {killed} systemctl kill --signal=SIGKILL 'temporal-worker@*'"
    # Long enough for the workers to drain: docker's own 10 s would SIGKILL them too.
    args.stop_worker_host = args.stop_worker_host or f"docker stop --time 90 {stopped}"
    args.start_worker_host = args.start_worker_host or f"docker start {stopped}"
    args.restart_server = args.restart_server or f"docker exec {server} systemctl restart temporal-dev-server"


async def main(args: argparse.Namespace) -> Figures:
    began = time.monotonic()
    run = f"fault-{uuid.uuid4().hex[:8]}"
    client = await Client.connect(args.address, namespace=args.namespace)
    accounts = [f"{run}-acct-{n}" for n in range(args.accounts)]
    figures = Figures()

    await run_tool_workflow(
        client, "SeedAccountsWorkflow", SeedAccounts({a: ACCOUNT_BALANCE_CENTS for a in accounts}), dict, run
    )
    await require_fault_injection(client, run, accounts)
    before: BalancesReport = await run_tool_workflow(client, "BalancesWorkflow", None, BalancesReport, run)
    figures.money_before_cents = sum(before.accounts[a] for a in accounts)
    print(f"{run}: {args.accounts} accounts seeded, {figures.money_before_cents} cents in all", flush=True)

    batch = plan_batch(run, args.orders, args.transfers, accounts, args.ship_delay)
    started = asyncio.Event()
    faults = asyncio.create_task(inject_faults(args, figures, client, run, len(batch), started))
    await start_all(client, batch, args.parallel_starts)
    started.set()
    figures.started = len(batch)
    print(f"{run}: started {figures.started} workflows ({args.orders} orders, {args.transfers} transfers)", flush=True)
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
        print(f"fault with {fault['running_workflows']:>4} running: {fault['command']}")
    print(f"duplicated side effects:   {figures.duplicated_side_effects}")
    print(f"retries deduplicated:      {figures.deduplicated_side_effects}")
    print(f"money before (cents):      {figures.money_before_cents}")
    print(f"money after (cents):       {figures.money_after_cents}")
    print(f"unbalanced accounts:       {len(figures.unbalanced_accounts)}")
    print(f"wall time (s):             {figures.seconds}")
    print("RESULT " + json.dumps(asdict(figures) | {"ok": figures.ok}, sort_keys=True))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", required=True, help="Temporal frontend, host:port")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--transfers", type=int, default=200)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument(
        "--ship-delay", type=float, default=1.0, help="seconds ship_order takes, so kills land mid-activity"
    )
    parser.add_argument(
        "--docker", help="SERVER,KILLED_WORKER,STOPPED_WORKER container names; fills in the fault commands"
    )
    parser.add_argument("--kill-workers", help="command that SIGKILLs one worker host's services")
    parser.add_argument("--stop-worker-host", help="command that stops the other worker host")
    parser.add_argument("--start-worker-host", help="command that starts it again")
    parser.add_argument("--restart-server", help="command that restarts the Temporal server")
    parser.add_argument(
        "--fault-delay", type=float, default=5.0, help="seconds from the first start to the first fault"
    )
    parser.add_argument(
        "--fault-gap",
        type=float,
        default=3.0,
        help="at least this many seconds between faults; each later fault also waits until at most "
        "its share of the batch (3/4, 1/2, 1/4) is still running",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the batch after the faults")
    parser.add_argument("--parallel-starts", type=int, default=50)
    parser.add_argument("--parallel-waits", type=int, default=200)
    args = parser.parse_args(argv)
    if args.docker:
        if len(args.docker.split(",")) != 3:
            parser.error("--docker takes SERVER,KILLED_WORKER,STOPPED_WORKER")
        docker_faults(args)
    missing = [
        f"--{name.replace('_', '-')}"
        for name in ("kill_workers", "stop_worker_host", "start_worker_host", "restart_server")
        if not getattr(args, name)
    ]
    if missing:
        parser.error(f"say how to inject every fault (or use --docker): missing {', '.join(missing)}")
    if args.orders < 1 or args.transfers < 1 or args.accounts < 2:
        parser.error("--orders and --transfers must be at least 1, --accounts at least 2")
    return args


if __name__ == "__main__":
    figures = asyncio.run(main(parse(sys.argv[1:])))
    report(figures)
    sys.exit(0 if figures.ok else 1)
