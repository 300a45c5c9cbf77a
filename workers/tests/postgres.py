"""A throwaway PostgreSQL server for the tests, from the host's Debian binaries.

initdb refuses to run as root, so under root the server runs as ``nobody``
from a temporary directory that user owns. Clients log in with a password
(scram-sha-256), so the store's password_file is exercised.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

USER = "temporal_workers"
SUPERUSER = "postgres"


def postgres_bin_dir() -> Path:
    """The newest ``/usr/lib/postgresql/<version>/bin``; fails the test session if none."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        pytest.fail(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): "
            "install the Debian package postgresql (tools/ensure-host-tools.sh does)"
        )

    def version(initdb: str) -> tuple[int, ...]:
        number = Path(initdb).parents[1].name
        return tuple(int(part) for part in re.findall(r"\d+", number))

    return Path(max(found, key=version)).parent


@dataclass
class PostgresServer:
    port: int
    bin_dir: Path = field(default_factory=postgres_bin_dir)
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="tw-postgres-")))
    password: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def password_file(self) -> Path:
        return self.base / "password"

    @property
    def log_file(self) -> Path:
        return self.base / "postgres.log"

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self.password_file.write_text(f"{self.password}\n")
        self._hand_over(self.base)
        self._hand_over(self.password_file)
        self._run(
            "initdb",
            *("-D", str(self.data_dir), "-U", SUPERUSER, "--pwfile", str(self.password_file)),
            *("--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--no-sync"),
        )
        self._pg_ctl("start")
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE {USER} LOGIN PASSWORD '{self.password}'")

    def restart(self) -> None:
        self._pg_ctl("restart")

    def stop(self, mode: str = "fast") -> None:
        if self.data_dir.exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def create_database(self) -> str:
        name = f"store_{uuid.uuid4().hex[:12]}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {USER}")
        return name

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname="postgres",
            autocommit=True,
        )

    def _pg_ctl(self, action: str) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.base}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            *("-D", str(self.data_dir), "-l", str(self.log_file), "-o", options),
            *("-w", "-t", "60", action),
        )

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [*self._as_owner(), str(self.bin_dir / program), *args]
        done = subprocess.run(
            command,
            cwd=self.base,
            env={**os.environ, "LC_ALL": "C"},
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            pytest.fail(
                f"{program} {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout}{done.stderr}{log}"
            )

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        nobody = pwd.getpwnam("nobody")
        return [
            *("setpriv", "--reuid", str(nobody.pw_uid), "--regid", str(nobody.pw_gid)),
            *("--clear-groups", "--"),
        ]

    def _hand_over(self, path: Path) -> None:
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
