"""The durable side-effect store the activities own.

Every side effect (moving money, charging, shipping, reserving) is a ledger
entry with an idempotency key, ``<workflow id>:<step>``. The key is unique, so
a retried or duplicated activity finds its entry and returns the first result
instead of applying the effect again. Every request is also logged, so the
store can tell how often an effect was asked for versus applied.

:class:`Store` is the interface the activities use; :class:`SqliteStore` is
the only implementation. A PostgreSQL one would implement the same protocol.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from durable_temporal_workers.models import EffectReport, KindReport, Outcome, Receipt


class StoreError(Exception):
    """A request the store refuses; retrying it cannot help."""


class StoreUnavailable(Exception):
    """The store file cannot be created or opened."""


class AccountNotFound(StoreError):
    pass


class InsufficientFunds(StoreError):
    pass


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


_SCHEMA = """
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


class SqliteStore:
    """:class:`Store` on one SQLite file, safe for concurrent activities.

    WAL lets readers run beside the writer, ``busy_timeout`` makes writers
    queue instead of failing, and each call is one ``BEGIN IMMEDIATE``
    transaction, so the check for an existing key and the write that follows
    cannot interleave with another activity's.
    """

    def __init__(self, path: str | Path, busy_timeout_seconds: float = 10.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout_seconds
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise StoreUnavailable(f"store.path {self.path}: {err}") from err

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per call: cheap for SQLite and safe across the threads
        # that run blocking activity code.
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            # Under WAL, NORMAL survives process crashes; only an OS crash can
            # lose the last commits.
            conn.execute("PRAGMA synchronous=NORMAL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as conn:
            # IMMEDIATE takes the write lock up front, so "is the key there?"
            # and "insert it" are one atomic step.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def apply(self, effect: Effect, *, require_funds: bool = False) -> Receipt:
        with self._transaction() as conn:
            existing = _find(conn, effect.key)
            if existing is not None:
                _log(conn, effect.key, effect.kind, "duplicate")
                return _receipt(effect.key, existing, "duplicate")
            refusal = _refusal(conn, effect, require_funds)
            if refusal is None:
                receipt = _insert(conn, effect, reverts=None)
                _log(conn, effect.key, effect.kind, "applied")
                return receipt
            # Logged in this transaction; raised once it has committed.
            _log(conn, effect.key, effect.kind, "rejected")
        raise refusal

    def revert(self, key: str, kind: str, original_key: str) -> Receipt:
        with self._transaction() as conn:
            existing = _find(conn, key)
            if existing is not None:
                _log(conn, key, kind, "duplicate")
                return _receipt(key, existing, "duplicate")
            original = _find(conn, original_key)
            if original is None:
                # The step never took effect, so there is nothing to undo.
                _log(conn, key, kind, "skipped")
                return Receipt(key=key, outcome="skipped")
            _, _, subject, account, amount, detail = original
            undo = Effect(key, kind, subject, -amount, account, detail)
            receipt = _insert(conn, undo, reverts=original_key)
            _log(conn, key, kind, "applied")
            return receipt

    def seed_accounts(self, balances: Mapping[str, int], key_prefix: str) -> dict[str, int]:
        with self._transaction() as conn:
            for account, target in sorted(balances.items()):
                conn.execute(
                    "INSERT OR IGNORE INTO accounts (id, balance_cents) VALUES (?, 0)", (account,)
                )
                key = f"{key_prefix}:{account}"
                if _find(conn, key) is not None:
                    _log(conn, key, "seed", "duplicate")
                    continue
                (current,) = conn.execute(
                    "SELECT balance_cents FROM accounts WHERE id = ?", (account,)
                ).fetchone()
                # Seeding is a ledger entry too, so balances always equal the
                # sum of their entries and the audit in report() holds.
                _insert(conn, Effect(key, "seed", account, target - current, account), None)
                _log(conn, key, "seed", "applied")
            return _balances(conn)

    def balances(self) -> dict[str, int]:
        with self._connect() as conn:
            return _balances(conn)

    def report(self) -> EffectReport:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT kind, outcome, COUNT(*) FROM requests GROUP BY kind, outcome"
            ).fetchall()
            counts: dict[str, dict[str, int]] = {}
            for kind, outcome, count in rows:
                counts.setdefault(kind, {})[outcome] = count
            by_kind = {
                kind: KindReport(requested=sum(c.values()), **c)
                for kind, c in sorted(counts.items())
            }
            (duplicated,) = conn.execute(
                "SELECT COUNT(*) FROM (SELECT key FROM requests WHERE outcome = 'applied'"
                " GROUP BY key HAVING COUNT(*) > 1)"
            ).fetchone()
            unbalanced = [
                account
                for (account,) in conn.execute(
                    "SELECT a.id FROM accounts a LEFT JOIN ledger l ON l.account = a.id"
                    " GROUP BY a.id HAVING a.balance_cents != COALESCE(SUM(l.amount_cents), 0)"
                    " ORDER BY a.id"
                )
            ]
        return EffectReport(
            requested=sum(k.requested for k in by_kind.values()),
            applied=sum(k.applied for k in by_kind.values()),
            deduplicated=sum(k.duplicate for k in by_kind.values()),
            duplicated=duplicated,
            unbalanced_accounts=unbalanced,
            by_kind=by_kind,
        )

    def requests(self, key_prefix: str) -> list[RequestRecord]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT seq, key, kind, outcome FROM requests WHERE substr(key, 1, ?) = ?"
                " ORDER BY seq",
                (len(key_prefix), key_prefix),
            ).fetchall()
        return [RequestRecord(seq, key, kind, outcome) for seq, key, kind, outcome in rows]


_LedgerRow = tuple[int, str, str, str | None, int, str]


def _find(conn: sqlite3.Connection, key: str) -> _LedgerRow | None:
    row: _LedgerRow | None = conn.execute(
        "SELECT seq, kind, subject, account, amount_cents, detail FROM ledger WHERE key = ?",
        (key,),
    ).fetchone()
    return row


def _receipt(key: str, row: _LedgerRow, outcome: Outcome) -> Receipt:
    seq, _, _, _, amount, detail = row
    return Receipt(key=key, outcome=outcome, seq=seq, amount_cents=amount, detail=detail)


def _refusal(conn: sqlite3.Connection, effect: Effect, require_funds: bool) -> StoreError | None:
    if effect.account is None:
        return None
    row = conn.execute(
        "SELECT balance_cents FROM accounts WHERE id = ?", (effect.account,)
    ).fetchone()
    if row is None:
        return AccountNotFound(f"account {effect.account!r} does not exist")
    if require_funds and row[0] + effect.amount_cents < 0:
        return InsufficientFunds(
            f"account {effect.account!r} has {row[0]} cents, needs {-effect.amount_cents}"
        )
    return None


def _insert(conn: sqlite3.Connection, effect: Effect, reverts: str | None) -> Receipt:
    cursor = conn.execute(
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
        conn.execute(
            "UPDATE accounts SET balance_cents = balance_cents + ? WHERE id = ?",
            (effect.amount_cents, effect.account),
        )
    return Receipt(
        key=effect.key,
        outcome="applied",
        seq=cursor.lastrowid,
        amount_cents=effect.amount_cents,
        detail=effect.detail,
    )


def _log(conn: sqlite3.Connection, key: str, kind: str, outcome: Outcome) -> None:
    conn.execute("INSERT INTO requests (key, kind, outcome) VALUES (?, ?, ?)", (key, kind, outcome))


def _balances(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT id, balance_cents FROM accounts ORDER BY id").fetchall())
