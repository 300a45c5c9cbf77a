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

from temporalio.exceptions import ApplicationError

from durable_temporal_workers.config import StoreConfig
from durable_temporal_workers.models import EffectReport, KindReport, Outcome, Receipt


class StoreError(Exception):
    """A request the store refuses; retrying it cannot help.

    ``account`` and ``amount_cents`` say what was refused, when there is one.
    """

    def __init__(self, message: str, account: str | None = None, amount_cents: int = 0) -> None:
        super().__init__(message)
        self.account = account
        self.amount_cents = amount_cents

    def application_error(self) -> ApplicationError:
        """The activity failure for this refusal: non-retryable, typed by its class name."""
        return ApplicationError(
            str(self),
            {"account": self.account, "amount_cents": self.amount_cents},
            type=type(self).__name__,
            non_retryable=True,
        )


class StoreUnavailable(Exception):
    """The store cannot be created, opened or reached when the worker starts."""


class AccountNotFound(StoreError):
    pass


class InsufficientFunds(StoreError):
    pass


class AmountOutOfRange(StoreError):
    """An amount, or the balance it would leave, does not fit a signed 64-bit integer."""


class NegativeAmount(StoreError):
    """A negative amount where it has no meaning: a seeded balance, a charge."""


# Amounts and balances are signed 64-bit integers in both databases; the store
# refuses what would leave that range instead of letting the database fail (or,
# in an old SQLite file, turn the balance into a float).
MAX_CENTS = 2**63 - 1
# Integer division truncates toward zero in both databases, so an amount is
# (amount / _HALF) * _HALF plus a remainder smaller than _HALF either way.
_HALF = 2**32


class _RolledBack(Exception):
    """Leaves a transaction without committing it."""


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

    def check(self) -> list[str]:
        """What is wrong with the stored data (not integer cents, the audit); [] if nothing."""
        ...

    def close(self) -> None:
        """Release connections; calls already running may finish."""
        ...


def open_store(config: StoreConfig, *, upgrade: bool = True) -> Store:
    """PostgreSQL when ``store.url`` is set, else the SQLite file at ``store.path``.

    Raises StoreUnavailable when the store cannot be opened. Without ``upgrade``,
    a SQLite file made by an earlier version is read as it is (for a check).
    """
    if config.url:
        # Imported here so SQLite-only processes never load psycopg.
        from durable_temporal_workers.store_postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(config.url, config.password_file)
    return SqliteStore(config.path, upgrade=upgrade)


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
            refusal = _amount_refusal(effect) or _refusal(tx, effect, require_funds)
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
            refusal = _refusal(tx, undo, require_funds=False)
            if refusal is None:
                receipt = _insert(tx, undo, reverts=original_key)
                _log(tx, key, kind, "applied")
                return receipt
            _log(tx, key, kind, "rejected")
        raise refusal

    def seed_accounts(self, balances: Mapping[str, int], key_prefix: str) -> dict[str, int]:
        """Refused as a whole if any target is negative, past 64 bits, or needs an entry
        past 64 bits: the transaction is rolled back, then the refused keys are logged."""
        refusals: list[tuple[str, StoreError]] = []
        try:
            with self._transaction(write=True) as tx:
                # Sorted, so concurrent seeds lock shared accounts in the same order.
                for account, target in sorted(balances.items()):
                    key = f"{key_prefix}:{account}"
                    tx.lock_key(key)
                    # Created first so that the row lock below also covers a new account.
                    tx.execute(
                        "INSERT INTO accounts (id, balance_cents) VALUES (?, 0)"
                        " ON CONFLICT (id) DO NOTHING",
                        (account,),
                    )
                    if _find(tx, key) is not None:
                        _log(tx, key, "seed", "duplicate")
                        continue
                    current = tx.one(
                        "SELECT balance_cents FROM accounts WHERE id = ?" + tx.for_update,
                        (account,),
                    )
                    assert current is not None  # inserted above
                    refusal = _seed_refusal(account, target, current[0])
                    if refusal is not None:
                        refusals.append((key, refusal))
                        continue
                    # Seeding is a ledger entry too, so balances always equal the
                    # sum of their entries and the audit in report() holds.
                    _insert(tx, Effect(key, "seed", account, target - current[0], account), None)
                    _log(tx, key, "seed", "applied")
                if refusals:
                    raise _RolledBack
                return _balances(tx)
        except _RolledBack:
            pass
        with self._transaction(write=True) as tx:
            for key, _ in refusals:
                _log(tx, key, "seed", "rejected")
        raise refusals[0][1]

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
            # SQLite's SUM fails on an intermediate result past 64 bits, and it adds in
            # no set order; the high and low 32 bits of each amount are summed apart
            # (neither sum can overflow) and put together here, exactly.
            unbalanced = sorted(
                account
                for account, balance, high, low in tx.execute(
                    "SELECT a.id, a.balance_cents,"
                    f" COALESCE(SUM(l.amount_cents / {_HALF}), 0),"
                    f" COALESCE(SUM(l.amount_cents - l.amount_cents / {_HALF} * {_HALF}), 0)"
                    " FROM accounts a LEFT JOIN ledger l ON l.account = a.id"
                    " GROUP BY a.id, a.balance_cents"
                )
                # PostgreSQL's SUM of BIGINT is NUMERIC (a Decimal): int() is exact.
                if balance != int(high) * _HALF + int(low)
            )
        return EffectReport(
            requested=sum(k.requested for k in by_kind.values()),
            applied=sum(k.applied for k in by_kind.values()),
            deduplicated=sum(k.duplicate for k in by_kind.values()),
            duplicated=duplicated,
            unbalanced_accounts=unbalanced,
            by_kind=by_kind,
        )

    def check(self) -> list[str]:
        with self._transaction(write=False) as tx:
            problems = self._non_integer(tx)
        if problems:
            # The audit below compares amounts; it means nothing until they are integers.
            return problems
        report = self.report()
        problems += [
            f"account {account!r}: balance differs from the sum of its ledger entries"
            for account in report.unbalanced_accounts
        ]
        if report.duplicated:
            problems.append(f"{report.duplicated} keys were applied more than once")
        return problems

    def _non_integer(self, tx: Session) -> list[str]:
        """Stored amounts that are not integers; none where the column types rule them out."""
        return []

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


def _amount_refusal(effect: Effect) -> StoreError | None:
    """What is wrong with the amount itself, before the database is asked anything."""
    what = f"{effect.kind} {effect.key!r}"
    if effect.account is not None:
        what += f" of account {effect.account!r}"
    if abs(effect.amount_cents) > MAX_CENTS:
        return AmountOutOfRange(
            f"{what}: {effect.amount_cents} cents is past 2^63 - 1 either way",
            effect.account,
            effect.amount_cents,
        )
    if effect.account is None and effect.amount_cents < 0:
        # Charges and the like move no balance: a negative one means nothing.
        return NegativeAmount(
            f"{what}: {effect.amount_cents} cents is negative", None, effect.amount_cents
        )
    return None


def _refusal(tx: Session, effect: Effect, require_funds: bool) -> StoreError | None:
    if effect.account is None:
        return None
    account, amount = effect.account, effect.amount_cents
    # Locked until commit, so the balance checked is the balance updated.
    row = tx.one("SELECT balance_cents FROM accounts WHERE id = ?" + tx.for_update, (account,))
    if row is None:
        return AccountNotFound(f"account {account!r} does not exist", account, amount)
    balance: int = row[0]
    if require_funds and balance + amount < 0:
        return InsufficientFunds(
            f"account {account!r} has {balance} cents, needs {-amount}", account, amount
        )
    if abs(balance + amount) > MAX_CENTS:
        return AmountOutOfRange(
            f"{effect.kind} of {amount} cents would take the balance of account {account!r}"
            f" ({balance} cents) past 2^63 - 1 either way",
            account,
            amount,
        )
    return None


def _seed_refusal(account: str, target: int, current: int) -> StoreError | None:
    if target < 0:
        return NegativeAmount(
            f"seed of account {account!r}: a balance of {target} cents is negative",
            account,
            target,
        )
    if target > MAX_CENTS:
        return AmountOutOfRange(
            f"seed of account {account!r}: a balance of {target} cents is past 2^63 - 1",
            account,
            target,
        )
    if abs(target - current) > MAX_CENTS:
        # The ledger entry is the difference, and it must fit the column too.
        return AmountOutOfRange(
            f"seed of account {account!r}: from {current} to {target} cents is a change"
            " past 2^63 - 1",
            account,
            target,
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

# STRICT: a column holds its declared type or the write fails. A plain INTEGER
# column let an overflowing balance become a float, silently and for good.
_SQLITE_TABLES = {
    "accounts": """(
    id TEXT PRIMARY KEY,
    balance_cents INTEGER NOT NULL
) STRICT""",
    "ledger": """(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    account TEXT REFERENCES accounts(id),
    amount_cents INTEGER NOT NULL,
    detail TEXT NOT NULL,
    reverts TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Without an account an amount is a charge (not negative) or the refund of one.
    CONSTRAINT ledger_unowned_amount_not_negative
        CHECK (account IS NOT NULL OR reverts IS NOT NULL OR amount_cents >= 0)
) STRICT""",
    "requests": """(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT""",
}
_SQLITE_INDEX = "CREATE INDEX IF NOT EXISTS requests_key ON requests (key)"
_SQLITE_SCHEMA = (
    "".join(f"CREATE TABLE IF NOT EXISTS {name} {body};\n" for name, body in _SQLITE_TABLES.items())
    + _SQLITE_INDEX
    + ";\n"
)
# Columns that must hold integers, and the column naming a row in a report.
_SQLITE_INTEGER_COLUMNS = (
    ("accounts", "id", "balance_cents"),
    ("ledger", "key", "amount_cents"),
    ("ledger", "key", "seq"),
    ("requests", "key", "seq"),
)


def _sqlite_non_integer(conn: sqlite3.Connection) -> list[str]:
    """Values in integer columns that are not integers (only a store made before STRICT has any)."""
    problems = []
    for table, name, column in _SQLITE_INTEGER_COLUMNS:
        rows = conn.execute(
            f"SELECT {name}, {column}, typeof({column}) FROM {table}"
            f" WHERE typeof({column}) != 'integer' ORDER BY {name} LIMIT 11"
        ).fetchall()
        for row_name, value, kind in rows[:10]:
            problems.append(
                f"{table} {row_name!r}: {column} is {kind} {value!r}, not integer cents"
            )
        if len(rows) > 10:
            problems.append(f"{table}: more rows whose {column} is not an integer")
    return problems


def _sqlite_legacy_tables(conn: sqlite3.Connection) -> list[str]:
    """The store's tables that are not STRICT: made by a version before STRICT tables."""
    rows = conn.execute("PRAGMA main.table_list").fetchall()
    # Columns: schema, name, type, ncol, wr (without rowid), strict.
    return [row[1] for row in rows if row[1] in _SQLITE_TABLES and not row[5]]


def _sqlite_upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Rebuild the tables of a store made before STRICT tables as STRICT tables.

    Refused (StoreUnavailable, nothing changed) when a value is not an integer:
    such a store needs an operator, who finds the values in the message and with
    ``temporal-workers check``.
    """
    # Tables are dropped and renamed below; the foreign key from the ledger must not
    # follow them. The pragma is a no-op inside a transaction, so it goes first.
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except BaseException:
        conn.execute("PRAGMA foreign_keys=ON")
        raise
    try:
        # Another worker on this file may have done it while we waited for the lock.
        legacy = _sqlite_legacy_tables(conn)
        problems = _sqlite_non_integer(conn) if legacy else []
        if problems:
            raise StoreUnavailable(
                f"store.path {path}: made by an earlier version and holds values that are"
                f" not integer cents, so it is not used until they are corrected"
                f" (temporal-workers check lists them): {'; '.join(problems)}"
            )
        for table in legacy:
            columns = ", ".join(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))
            conn.execute(f"CREATE TABLE {table}_strict {_SQLITE_TABLES[table]}")
            conn.execute(f"INSERT INTO {table}_strict ({columns}) SELECT {columns} FROM {table}")
            conn.execute(f"DROP TABLE {table}")
            conn.execute(f"ALTER TABLE {table}_strict RENAME TO {table}")
        conn.execute(_SQLITE_INDEX)
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreUnavailable(f"store.path {path}: ledger rows name missing accounts")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.execute("PRAGMA foreign_keys=ON")


class _SqliteSession(Session):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

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

    def __init__(
        self, path: str | Path, busy_timeout_seconds: float = 10.0, *, upgrade: bool = True
    ) -> None:
        """``upgrade``: rebuild the tables of a file made before STRICT tables (or refuse
        it when it holds values that are not integers); without it, leave them as they are.
        """
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
                if upgrade and _sqlite_legacy_tables(conn):
                    _sqlite_upgrade(conn, self.path)
        except (OSError, sqlite3.Error) as err:
            raise StoreUnavailable(f"store.path {self.path}: {err}") from err

    def _non_integer(self, tx: Session) -> list[str]:
        assert isinstance(tx, _SqliteSession)
        return _sqlite_non_integer(tx.connection)

    def legacy_tables(self) -> list[str]:
        """Tables made before STRICT tables; only when opened without ``upgrade``."""
        with self._connect() as conn:
            return _sqlite_legacy_tables(conn)

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
