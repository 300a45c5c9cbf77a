"""Systemd containers and converges: what the benchmark does to its hosts."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The options that boot systemd as PID 1 on these machines (--privileged is refused here),
# as in tools/demo.sh and .config/molecule/config.yml.
SYSTEMD_RUN_OPTIONS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_PTRACE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
    "-e", "container=docker", "--stop-signal", "SIGRTMIN+3",
]  # fmt: skip


# How many of a converge's slowest tasks the results keep: where a converge's time goes.
SLOWEST_TASKS = 8


class BenchError(RuntimeError):
    """A step of the benchmark failed; the message says which and where to look."""


def run(argv: list[str], *, check: bool = True, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if check and done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Container:
    name: str

    def start(self, image: str) -> None:
        run(["docker", "rm", "-f", self.name], check=False)
        run(
            [
                *("docker", "run", "-d", "--name", self.name, "--hostname", self.name),
                *SYSTEMD_RUN_OPTIONS,
                *(image, "/lib/systemd/systemd"),
            ]
        )
        # systemctl fails with "Failed to connect to bus" for a moment after the start,
        # and --wait alone does not cover that moment.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = self.exec("systemctl", "is-system-running", "--wait", check=False).strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.5)
        raise BenchError(f"systemd in {self.name} did not finish booting")

    def remove(self) -> None:
        run(["docker", "rm", "-f", self.name], check=False)

    def exec(self, *argv: str, check: bool = True) -> str:
        return run(["docker", "exec", self.name, *argv], check=check)

    def copy_in(self, source: Path, dest: str) -> None:
        # Not under /tmp: it is a tmpfs in these containers and would hide the copy.
        self.exec("mkdir", "-p", str(Path(dest).parent))
        run(["docker", "cp", str(source), f"{self.name}:{dest}"])

    @property
    def ip(self) -> str:
        fmt = "{{ range .NetworkSettings.Networks }}{{ .IPAddress }}{{ end }}"
        return run(["docker", "inspect", "-f", fmt, self.name]).strip()

    def unit_pid(self, unit: str) -> int:
        return int(self.exec("systemctl", "show", "-p", "MainPID", "--value", unit).strip() or 0)

    def cpu_seconds(self, pid: int) -> float:
        """User + system CPU of a process and all its threads so far."""
        stat = self.exec("cat", f"/proc/{pid}/stat")
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat.rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / self.clock_ticks

    @property
    def clock_ticks(self) -> int:
        return int(self.exec("getconf", "CLK_TCK").strip())

    def unit_usage(self, unit: str) -> dict[str, float]:
        """CPU seconds so far, RSS and PSS (MiB) of every process in the unit's cgroup.

        Per-unit CPU accounting is off in these containers (cgroup v1, no cpuacct per unit),
        so CPU is summed from /proc: each process's own time plus the time of its exited
        children, which the parent collected (PostgreSQL's postmaster reaps its backends).
        PSS counts shared memory (shared_buffers) once; summed RSS counts it per process.
        """
        script = (
            'cg=$(systemctl show -p ControlGroup --value "$1"); '
            'for p in $(cat "/sys/fs/cgroup/systemd$cg/cgroup.procs" 2>/dev/null); do '
            "stat=$(cat /proc/$p/stat 2>/dev/null) || continue; "
            "rss=$(awk '/^VmRSS:/ {print $2}' /proc/$p/status 2>/dev/null); "
            "pss=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null); "
            'echo "${rss:-0} ${pss:-0} ${stat##*) }"; done'
        )
        ticks = self.clock_ticks
        cpu = rss = pss = 0.0
        for line in self.exec("sh", "-c", script, "sh", unit).splitlines():
            fields = line.split()
            # After the two memory figures: /proc/<pid>/stat from its 3rd field (state), so
            # utime, stime, cutime, cstime are its 14th to 17th fields.
            cpu += sum(int(f) for f in fields[2 + 11 : 2 + 15]) / ticks
            rss += int(fields[0]) / 1024
            pss += int(fields[1]) / 1024
        return {"cpu_s": cpu, "rss_mib": rss, "pss_mib": pss}

    def psql(self, query: str) -> str:
        """One query as the local postgres superuser, unaligned output."""
        return self.exec("runuser", "-u", "postgres", "--", "psql", "-Atc", query).strip()

    def memory(self, unit: str) -> dict[str, float | None]:
        """The unit's cgroup memory (MemoryCurrent) and its main process's RSS, in MiB."""
        shown = self.exec("systemctl", "show", "-p", "MemoryCurrent", "-p", "MainPID", unit)
        props = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
        current = props.get("MemoryCurrent", "")
        rss: float | None = None
        pid = int(props.get("MainPID") or 0)
        if pid:
            status = self.exec("cat", f"/proc/{pid}/status", check=False)
            found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
            rss = int(found.group(1)) / 1024 if found else None
        return {
            "memory_current_mib": int(current) / 2**20 if current.isdigit() else None,
            "rss_mib": rss,
        }


@dataclass(frozen=True)
class Converge:
    name: str
    seconds: float
    changed: int
    ok: int
    # The slowest tasks (name, seconds) from the profile_tasks summary, slowest first.
    slowest: list[tuple[str, float]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seconds": round(self.seconds, 1),
            "changed": self.changed,
            "tasks_ok": self.ok,
            "slowest_tasks": [{"task": t, "seconds": s} for t, s in self.slowest],
        }


class Ansible:
    """Runs the bench playbooks against one container, the way molecule's docker driver does."""

    # Shared by every instance: the logs of all hosts' converges number in run order.
    _numbers = itertools.count(1)

    def __init__(
        self,
        repo: Path,
        host: str,
        workdir: Path,
        env: dict[str, str],
        inventory: str = "inventory.json",
    ) -> None:
        self.repo = repo
        self.host = host
        self.workdir = workdir
        self.env = env
        self.inventory = workdir / inventory
        hosts = {
            "all": {
                "hosts": {host: {}},
                "vars": {
                    "ansible_connection": "community.docker.docker",
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "durable_temporal_repo": str(repo),
                },
            }
        }
        self.inventory.write_text(json.dumps(hosts), encoding="utf-8")
        self.converges: list[Converge] = []

    def converge(self, playbook: str, extra_vars: dict[str, Any], log_name: str) -> Converge:
        number = next(self._numbers)
        log = self.workdir / f"{number:02d}-{log_name}.log"
        argv = ["ansible-playbook", "-i", str(self.inventory), str(self.repo / playbook)]
        if extra_vars:
            vars_file = self.workdir / f"{number:02d}-{log_name}.vars.json"
            vars_file.write_text(json.dumps(extra_vars), encoding="utf-8")
            argv += ["-e", f"@{vars_file}"]
        started = time.perf_counter()
        with log.open("w", encoding="utf-8") as out:
            done = subprocess.run(
                argv, stdout=out, stderr=subprocess.STDOUT, env=self.env, check=False
            )
        seconds = time.perf_counter() - started
        text = log.read_text(encoding="utf-8")
        recap = re.search(
            rf"^{re.escape(self.host)}\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
            text,
            re.MULTILINE,
        )
        if done.returncode != 0 or recap is None:
            raise BenchError(f"{playbook} failed (exit {done.returncode}); see {log}")
        # profile_tasks' summary lines: "<role> : <task> ------ 12.34s".
        slowest = [
            (m.group(1), float(m.group(2)))
            for m in re.finditer(r"^(\S.*?) -{3,} (\d+\.\d+)s$", text, re.MULTILINE)
        ]
        converge = Converge(
            name=log_name,
            seconds=seconds,
            changed=int(recap.group(2)),
            ok=int(recap.group(1)),
            slowest=sorted(slowest, key=lambda t: -t[1])[:SLOWEST_TASKS],
        )
        self.converges.append(converge)
        return converge
