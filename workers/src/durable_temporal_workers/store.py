"""The durable side-effect store the activities own.

Every side effect (moving money, charging, shipping, reserving) is a ledger
entry with an idempotency key, ``<workflow id>:<step>``. The key is unique, so
a retried or duplicated activity finds its entry and returns the first result
instead of applying the effect again. Every request is also logged, so the
store can tell how often an effect was asked for versus applied.

:class:`Store` is the interface the activities use. :class:`SqliteStore` keeps
it in a file on one host; :class:`~durable_temporal_workers.store_postgres.PostgresStore`
in a database that workers on several hosts share. Both run the same logic
(:class:`SqlStore`); :func:`open_store` picks one from the config.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from durable_temporal_workers.config import StoreConfig
from durable_temporal_workers.models import EffectReport, KindReport, Outcome, Receipt


class StoreError(Exception):
    """A request the store refuses; retrying it cannot help."""


class StoreUnavailable(Exception):
    """The store cannot be created, opened or reached when the worker starts."""


class AccountNotFound(StoreError):
    pass


class InsufficientFunds(StoreError):
    pass


# Ledger kind of the entry a skipped compensation leaves under the key of the step it
# found no effect of, so that step can no longer apply.
VOID = "void"


@dataclass(frozen=True)
class Effect:
    """A side effect to apply exactly once."""

    key: str
    kind: str
    subject: str
    amount_cents: int = 0
    # When set, ``amount_cents`` is added to this account's balance.
    account: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class RequestRecord:
    seq: int
    key: str
    kind: str
    outcome: Outcome


class Store(Protocol):
    def apply(self, effect: Effect, *, require_funds: bool = False) -> Receipt:
        """Apply ``effect`` once; a repeated key returns the first receipt."""
        ...

    def revert(self, key: str, kind: str, original_key: str) -> Receipt:
        """Undo the effect stored under ``original_key``, once; skipped if there is none."""
        ...

    def seed_accounts(self, balances: Mapping[str, int], key_prefix: str) -> dict[str, int]:
        """Create accounts or set their balances, through the ledger."""
        ...

    def balances(self) -> dict[str, int]: ...

    def report(self) -> EffectReport: ...

    def requests(self, key_prefix: str) -> list[RequestRecord]:
        """The request log for keys starting with ``key_prefix``, oldest first."""
        ...

    def close(self) -> None:
        """Release connections; calls already running may finish."""
        ...


def open_store(config: StoreConfig) -> Store:
    """PostgreSQL when ``store.url`` is set, else the SQLite file at ``store.path``.

    Raises StoreUnavailable when the store cannot be opened.
    """
    if config.url:
        # Imported here so SQLite-only processes never load psycopg.
        from durable_temporal_workers.store_postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(config.url, config.password_file)
    return SqliteStore(config.path)


# --- the logic, once for both databases -------------------------------------------

Row = tuple[Any, ...]


class Session(ABC):
    """One open transaction.

    The statements :class:`SqlStore` sends are valid in both SQLite and
    PostgreSQL and use ``?`` placeholders; a session adapts them if needed.
    """

    # Appended to a SELECT of a row the transaction is about to update.
    for_update = ""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run one statement; the rows it returns, if any."""

    @abstractmethod
    def insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run an INSERT into a table keyed by ``seq``; the new row's seq."""

    def lock_key(self, key: str) -> None:  # noqa: B027 (optional hook)
        """Make other transactions on ``key`` wait until this one ends.

        A no-op where the whole transaction already holds the only write lock.
        """

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None


class SqlStore(ABC):
    """:class:`Store` over a :class:`Session` that a subclass opens."""

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[Session]:
        """Committed when the block exits normally, rolled back when it raises.

        With ``write=False`` it reads one consistent snapshot.
        """

    def close(self) -> None:  # noqa: B027 (nothing to release by default)
        pass

    def apply(self, effect: Effect, *, require_funds: bool = False) -> Receipt:
        with self._transaction(write=True) as tx:
            tx.lock_key(effect.key)
            existing = _find(tx, effect.key)
            if existing is not None and existing[1] == VOID:
                # Its compensation already ran: a late attempt must not apply it now.
                _log(tx, effect.key, effect.kind, "voided")
                return _receipt(effect.key, existing, "voided")
            if existing is not None:
                _log(tx, effect.key, effect.kind, "duplicate")
                return _receipt(effect.key, existing, "duplicate")
            refusal = _refusal(tx, effect, require_funds)
            if refusal is None:
                receipt = _insert(tx, effect, reverts=None)
                _log(tx, effect.key, effect.kind, "applied")
                return receipt
            # Logged in this transaction; raised once it has committed.
            _log(tx, effect.key, effect.kind, "rejected")
        raise refusal

    def revert(self, key: str, kind: str, original_key: str) -> Receipt:
        with self._transaction(write=True) as tx:
            tx.lock_key(key)
            # Also waits for an apply of the original that is still in flight.
            tx.lock_key(original_key)
            existing = _find(tx, key)
            if existing is not None:
                _log(tx, key, kind, "duplicate")
                return _receipt(key, existing, "duplicate")
            original = _find(tx, original_key)
            if original is None or original[1] == VOID:
                # The step never took effect, so there is nothing to undo. Its key is
                # voided: an attempt of it that timed out but still runs somewhere
                # would otherwise apply it after this compensation, for good.
                if original is None:
                    void = Effect(original_key, VOID, key, 0, None, f"voided by {key}")
                    _insert(tx, void, reverts=None)
                _log(tx, key, kind, "skipped")
                return Receipt(key=key, outcome="skipped")
            _, _, subject, account, amount, detail = original
            undo = Effect(key, kind, subject, -amount, account, detail)
            receipt = _insert(tx, undo, reverts=original_key)
            _log(tx, key, kind, "applied")
            return receipt

    def seed_accounts(self, balances: Mapping[str, int], key_prefix: str) -> dict[str, int]:
        with self._transaction(write=True) as tx:
            # Sorted, so concurrent seeds lock shared accounts in the same order.
            for account, target in sorted(balances.items()):
                key = f"{key_prefix}:{account}"
                tx.lock_key(key)
                tx.execute(
                    "INSERT INTO accounts (id, balance_cents) VALUES (?, 0)"
                    " ON CONFLICT (id) DO NOTHING",
                    (account,),
                )
                if _find(tx, key) is not None:
                    _log(tx, key, "seed", "duplicate")
                    continue
                current = tx.one(
                    "SELECT balance_cents FROM accounts WHERE id = ?" + tx.for_update, (account,)
                )
                assert current is not None  # inserted above
                # Seeding is a ledger entry too, so balances always equal the
                # sum of their entries and the audit in report() holds.
                _insert(tx, Effect(key, "seed", account, target - current[0], account), None)
                _log(tx, key, "seed", "applied")
            return _balances(tx)

    def balances(self) -> dict[str, int]:
        with self._transaction(write=False) as tx:
            return _balances(tx)

    def report(self) -> EffectReport:
        with self._transaction(write=False) as tx:
            counts: dict[str, dict[str, int]] = {}
            for kind, outcome, count in tx.execute(
                "SELECT kind, outcome, COUNT(*) FROM requests GROUP BY kind, outcome"
            ):
                counts.setdefault(kind, {})[outcome] = count
            by_kind = {
                kind: KindReport(requested=sum(c.values()), **c)
                for kind, c in sorted(counts.items())
            }
            (duplicated,) = tx.one(
                "SELECT COUNT(*) FROM (SELECT key FROM requests WHERE outcome = 'applied'"
                " GROUP BY key HAVING COUNT(*) > 1) AS repeated"
            ) or (0,)
            unbalanced = sorted(
                account
                for (account,) in tx.execute(
                    "SELECT a.id FROM accounts a LEFT JOIN ledger l ON l.account = a.id"
                    " GROUP BY a.id HAVING a.balance_cents != COALESCE(SUM(l.amount_cents), 0)"
                )
            )
        return EffectReport(
            requested=sum(k.requested for k in by_kind.values()),
            applied=sum(k.applied for k in by_kind.values()),
            deduplicated=sum(k.duplicate for k in by_kind.values()),
            duplicated=duplicated,
            unbalanced_accounts=unbalanced,
            by_kind=by_kind,
        )

    def requests(self, key_prefix: str) -> list[RequestRecord]:
        with self._transaction(write=False) as tx:
            rows = tx.execute(
                "SELECT seq, key, kind, outcome FROM requests WHERE substr(key, 1, ?) = ?"
                " ORDER BY seq",
                (len(key_prefix), key_prefix),
            )
        return [RequestRecord(seq, key, kind, outcome) for seq, key, kind, outcome in rows]


_LedgerRow = tuple[int, str, str, str | None, int, str]


def _find(tx: Session, key: str) -> _LedgerRow | None:
    row = tx.one(
        "SELECT seq, kind, subject, account, amount_cents, detail FROM ledger WHERE key = ?",
        (key,),
    )
    return None if row is None else (row[0], row[1], row[2], row[3], row[4], row[5])


def _receipt(key: str, row: _LedgerRow, outcome: Outcome) -> Receipt:
    seq, _, _, _, amount, detail = row
    return Receipt(key=key, outcome=outcome, seq=seq, amount_cents=amount, detail=detail)


def _refusal(tx: Session, effect: Effect, require_funds: bool) -> StoreError | None:
    if effect.account is None:
        return None
    # Locked until commit, so the balance checked is the balance updated.
    row = tx.one(
        "SELECT balance_cents FROM accounts WHERE id = ?" + tx.for_update, (effect.account,)
    )
    if row is None:
        return AccountNotFound(f"account {effect.account!r} does not exist")
    if require_funds and row[0] + effect.amount_cents < 0:
        return InsufficientFunds(
            f"account {effect.account!r} has {row[0]} cents, needs {-effect.amount_cents}"
        )
    return None


def _insert(tx: Session, effect: Effect, reverts: str | None) -> Receipt:
    seq = tx.insert(
        "INSERT INTO ledger (key, kind, subject, account, amount_cents, detail, reverts)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            effect.key,
            effect.kind,
            effect.subject,
            effect.account,
            effect.amount_cents,
            effect.detail,
            reverts,
        ),
    )
    if effect.account is not None:
        tx.execute(
            "UPDATE accounts SET balance_cents = balance_cents + ? WHERE id = ?",
            (effect.amount_cents, effect.account),
        )
    return Receipt(
        key=effect.key,
        outcome="applied",
        seq=seq,
        amount_cents=effect.amount_cents,
        detail=effect.detail,
    )


def _log(tx: Session, key: str, kind: str, outcome: Outcome) -> None:
    tx.execute("INSERT INTO requests (key, kind, outcome) VALUES (?, ?, ?)", (key, kind, outcome))


def _balances(tx: Session) -> dict[str, int]:
    # Sorted here, not in SQL: database collations order text differently.
    return dict(sorted(tx.execute("SELECT id, balance_cents FROM accounts")))


# --- SQLite -------------------------------------------------------------------------

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY,
    balance_cents INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    account TEXT REFERENCES accounts(id),
    amount_cents INTEGER NOT NULL,
    detail TEXT NOT NULL,
    reverts TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS requests_key ON requests (key);
"""


class _SqliteSession(Session):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._conn.execute(sql, params).fetchall()

    def insert(self, sql: str, params: Sequence[Any]) -> int:
        seq = self._conn.execute(sql, params).lastrowid
        assert seq is not None
        return seq


class SqliteStore(SqlStore):
    """:class:`Store` on one SQLite file, safe for concurrent activities on one host.

    WAL lets readers run beside the writer, ``busy_timeout`` makes writers
    queue instead of failing, and each write is one ``BEGIN IMMEDIATE``
    transaction, so the check for an existing key and the write that follows
    cannot interleave with another activity's.

    Connections are kept open between calls and lent to one thread at a time.
    Opening one per call cost about 0.8 ms of CPU (the schema is parsed anew) and,
    when it was the last one open, a WAL checkpoint on close: most of what an
    order's three store writes cost the worker.
    """

    # Idle connections kept; more are opened when more threads write at once.
    max_idle_connections = 16

    def __init__(self, path: str | Path, busy_timeout_seconds: float = 10.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout_seconds
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SQLITE_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise StoreUnavailable(f"store.path {self.path}: {err}") from err

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = self._borrow()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _borrow(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        # Lent to one thread at a time, never shared: the pool hands it across threads.
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            # Under WAL, NORMAL survives process crashes; only an OS crash can
            # lose the last commits.
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        # One still inside a transaction (its ROLLBACK failed) is not lent again.
        if not conn.in_transaction:
            with self._lock:
                if not self._closed and len(self._idle) < self.max_idle_connections:
                    self._idle.append(conn)
                    return
        conn.close()

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Session]:
        with self._connect() as conn:
            # IMMEDIATE takes the write lock up front, so "is the key there?"
            # and "insert it" are one atomic step. A read gets a WAL snapshot.
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield _SqliteSession(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
