"""The side-effect store in PostgreSQL, shared by the workers of several hosts.

Concurrency: each call is one READ COMMITTED transaction that first takes a
transaction-scoped advisory lock on its idempotency key, then reads the
account row ``FOR UPDATE`` before checking and changing its balance. Work on
the same key or account therefore queues across processes and hosts, and
every statement after a lock sees what the previous holder committed. That
was chosen over SERIALIZABLE because conflicts wait instead of failing, so
there is no retry loop to get right, and unrelated keys never conflict.
Locks are taken keys first, then accounts in sorted order, so they cannot
deadlock.

Amounts are BIGINT, which PostgreSQL keeps exact and refuses to overflow; the
shared logic refuses an overflow before the database would.

Errors after start-up (connection lost, database restarting, pool exhausted)
are psycopg or pool exceptions, not StoreError, so Temporal retries the
activity; the pool checks a connection before lending it and replaces broken
ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

from durable_temporal_workers.store import Row, Session, SqlStore, StoreUnavailable

# Two-int advisory locks live apart from the one-bigint key locks.
_SCHEMA_LOCK = (0x7457, 1)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS accounts (
        id TEXT PRIMARY KEY,
        balance_cents BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS ledger (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        subject TEXT NOT NULL,
        account TEXT REFERENCES accounts(id),
        amount_cents BIGINT NOT NULL,
        detail TEXT NOT NULL,
        reverts TEXT,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        CONSTRAINT ledger_unowned_amount_not_negative
            CHECK (account IS NOT NULL OR reverts IS NOT NULL OR amount_cents >= 0)
    )""",
    # A database made by an earlier version has the table without the constraint.
    # Adding it checks the rows already there: one that breaks it stops the start.
    """DO $$ BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM pg_constraint
            WHERE conrelid = 'ledger'::regclass AND conname = 'ledger_unowned_amount_not_negative'
        ) THEN
            ALTER TABLE ledger ADD CONSTRAINT ledger_unowned_amount_not_negative
                CHECK (account IS NOT NULL OR reverts IS NOT NULL OR amount_cents >= 0);
        END IF;
    END $$""",
    "CREATE INDEX IF NOT EXISTS ledger_account ON ledger (account)",
    """CREATE TABLE IF NOT EXISTS requests (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        outcome TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    "CREATE INDEX IF NOT EXISTS requests_key ON requests (key)",
)

# A peer stuck inside a transaction (host paused, network cut) must not hold
# our activities forever: waiting for its locks fails instead (and is retried),
# and the server ends our own transactions if we stall inside one.
_SESSION_SETTINGS = (
    "SET lock_timeout = '10s'",
    "SET idle_in_transaction_session_timeout = '60s'",
)

_Connection = psycopg.Connection[TupleRow]


class _PostgresSession(Session):
    for_update = " FOR UPDATE"

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = self._conn.execute(_placeholders(sql), params)
        return cursor.fetchall() if cursor.description is not None else []

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        row = self._conn.execute(_placeholders(sql) + " RETURNING seq", params).fetchone()
        assert row is not None
        seq: int = row[0]
        return seq

    def lock_key(self, key: str) -> None:
        self._conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (key,))


class PostgresStore(SqlStore):
    """:class:`~durable_temporal_workers.store.Store` in a PostgreSQL database.

    ``url`` must not hold the password; it is read from the first line of
    ``password_file``. Without one (or with an empty file), libpq's usual
    sources apply: ``PGPASSWORD``, ``~/.pgpass``, client certificates.
    """

    def __init__(
        self,
        url: str,
        password_file: str | Path | None = None,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout_seconds: int = 10,
        pool_timeout_seconds: float = 30.0,
    ) -> None:
        self.url = url
        password = _read_password(password_file)
        try:
            url_params = conninfo_to_dict(url)
        except psycopg.Error as err:
            raise StoreUnavailable(f"store.url {url}: {_one_line(err, password)}") from err
        if "password" in url_params:
            raise StoreUnavailable(
                "store.url must not carry a password; put it in store.password_file"
            )
        params: dict[str, Any] = {"autocommit": True}
        if password is not None:
            params["password"] = password
        if "connect_timeout" not in url_params:
            # libpq waits forever by default, e.g. for a host that drops packets.
            params["connect_timeout"] = connect_timeout_seconds
        try:
            # A plain connection first: it reports why it fails, a pool only times out.
            with psycopg.connect(url, **params) as conn:
                _create_schema(conn)
        except psycopg.Error as err:
            raise StoreUnavailable(f"store.url {url}: {_one_line(err, password)}") from err
        self._pool: ConnectionPool[_Connection] = ConnectionPool(
            url,
            kwargs=params,
            min_size=min_connections,
            max_size=max_connections,
            timeout=pool_timeout_seconds,
            check=ConnectionPool.check_connection,
            configure=_configure,
            name="temporal-workers-store",
            open=True,
        )

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Session]:
        with self._pool.connection() as conn, conn.transaction():
            if not write:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _PostgresSession(conn)


def _read_password(password_file: str | Path | None) -> str | None:
    if password_file is None:
        return None
    try:
        lines = Path(password_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise StoreUnavailable(f"store.password_file {password_file}: {reason}") from err
    # Empty: no password (certificate or peer login, or libpq's own sources).
    return lines[0] if lines and lines[0] else None


def _create_schema(conn: _Connection) -> None:
    # Two hosts starting at once would race on CREATE ... IF NOT EXISTS
    # (duplicate key in the catalog); the lock makes the second one wait.
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", _SCHEMA_LOCK)
        for statement in _SCHEMA:
            conn.execute(statement)


def _configure(conn: _Connection) -> None:
    for statement in _SESSION_SETTINGS:
        conn.execute(statement)


def _placeholders(sql: str) -> str:
    # The shared statements use ? and contain no literal % or ?.
    return sql.replace("?", "%s")


def _one_line(err: Exception, password: str | None) -> str:
    text = " ".join(str(err).split())
    # libpq does not echo passwords; this makes sure of it.
    return text.replace(password, "***") if password else text
