"""The store contract, run against SQLite and a real PostgreSQL alike."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import psycopg
import pytest

from durable_temporal_workers.cli import main
from durable_temporal_workers.config import StoreConfig
from durable_temporal_workers.store import (
    MAX_CENTS,
    AccountNotFound,
    AmountOutOfRange,
    Effect,
    InsufficientFunds,
    NegativeAmount,
    SqliteStore,
    SqlStore,
    StoreError,
    StoreUnavailable,
    open_store,
)
from durable_temporal_workers.store_postgres import PostgresStore

from .conftest import console_script, free_port, subprocess_env
from .postgres import PostgresServer

# Another store on the same database, like a worker on another host.
StoreFactory = Callable[[], SqlStore]


@pytest.fixture(params=["sqlite", "postgres"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    opened: list[SqlStore] = []
    if request.param == "sqlite":
        config = StoreConfig(path=str(tmp_path / "store.db"))
    else:
        # Only the Postgres cases start the server.
        pg: PostgresServer = request.getfixturevalue("postgres")
        config = StoreConfig(url=pg.url(pg.create_database()), password_file=str(pg.password_file))

    def factory() -> SqlStore:
        store = open_store(config)
        assert isinstance(store, SqlStore)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def store(new_store: StoreFactory) -> SqlStore:
    return new_store()


def test_open_store_picks_the_backend(
    new_store: StoreFactory, request: pytest.FixtureRequest
) -> None:
    expected = SqliteStore if "sqlite" in request.node.name else PostgresStore
    assert isinstance(new_store(), expected)


def test_apply_once_and_a_duplicate_returns_the_first_receipt(store: SqlStore) -> None:
    store.seed_accounts({"alice": 1_000}, "seed")
    first = store.apply(Effect("w1:credit", "credit", "alice", 250, "alice", "first"))
    again = store.apply(Effect("w1:credit", "credit", "alice", 999, "alice", "second"))
    assert first.outcome == "applied"
    assert first.seq is not None
    assert again.outcome == "duplicate"
    assert (again.seq, again.amount_cents, again.detail) == (first.seq, 250, "first")
    assert store.balances() == {"alice": 1_250}
    assert [r.outcome for r in store.requests("w1:")] == ["applied", "duplicate"]


def test_an_effect_without_an_account_is_recorded(store: SqlStore) -> None:
    receipt = store.apply(Effect("o1:ship", "ship_order", "o1", detail="SHIP-1"))
    assert receipt.outcome == "applied"
    assert receipt.detail == "SHIP-1"
    assert store.apply(Effect("o1:ship", "ship_order", "o1")).detail == "SHIP-1"
    assert store.balances() == {}


def test_refusals_are_logged_then_raised(store: SqlStore) -> None:
    store.seed_accounts({"alice": 100}, "seed")
    debit = Effect("w2:debit", "debit", "alice", -500, "alice")
    with pytest.raises(InsufficientFunds, match="'alice' has 100 cents, needs 500"):
        store.apply(debit, require_funds=True)
    with pytest.raises(AccountNotFound, match="'nobody' does not exist"):
        store.apply(Effect("w3:credit", "credit", "nobody", 5, "nobody"))
    assert store.balances() == {"alice": 100}
    assert [r.outcome for r in store.requests("w2:")] == ["rejected"]
    assert [r.outcome for r in store.requests("w3:")] == ["rejected"]
    # A refused key is not taken: it applies once the money is there.
    store.apply(Effect("w4:credit", "credit", "alice", 400, "alice"))
    assert store.apply(debit, require_funds=True).outcome == "applied"
    assert store.balances() == {"alice": 0}
    report = store.report()
    assert report.by_kind["debit"].rejected == 1
    assert report.by_kind["debit"].applied == 1
    assert report.by_kind["credit"].rejected == 1


def test_revert_once_and_skipped_without_an_original(store: SqlStore) -> None:
    store.seed_accounts({"bob": 0}, "seed")
    store.apply(Effect("w5:credit", "credit", "bob", 300, "bob", "CR-1"))
    undo = store.revert("w5:reverse_credit", "reverse_credit", "w5:credit")
    assert undo.outcome == "applied"
    assert (undo.amount_cents, undo.detail) == (-300, "CR-1")
    again = store.revert("w5:reverse_credit", "reverse_credit", "w5:credit")
    assert again.outcome == "duplicate"
    assert again.seq == undo.seq
    skipped = store.revert("w6:refund", "refund", "w6:debit")
    assert skipped.outcome == "skipped"
    assert skipped.seq is None
    assert store.balances() == {"bob": 0}
    log = [(r.kind, r.outcome) for r in store.requests("w5:")]
    assert log == [
        ("credit", "applied"),
        ("reverse_credit", "applied"),
        ("reverse_credit", "duplicate"),
    ]
    assert [r.outcome for r in store.requests("w6:")] == ["skipped"]


def test_a_step_whose_compensation_found_nothing_can_never_apply(store: SqlStore) -> None:
    """A debit that timed out but still runs on a stalled host, after its refund ran."""
    store.seed_accounts({"ann": 500}, "seed")
    skipped = store.revert("w7:refund", "refund", "w7:debit")
    assert skipped.outcome == "skipped"
    late = store.apply(Effect("w7:debit", "debit", "ann", -200, "ann"), require_funds=True)
    assert late.outcome == "voided"
    assert late.amount_cents == 0
    assert store.balances() == {"ann": 500}
    # The compensation stays a no-op when retried.
    assert store.revert("w7:refund", "refund", "w7:debit").outcome == "skipped"
    assert [(r.kind, r.outcome) for r in store.requests("w7:")] == [
        ("refund", "skipped"),
        ("debit", "voided"),
        ("refund", "skipped"),
    ]
    report = store.report()
    assert report.by_kind["debit"].voided == 1
    assert report.duplicated == 0
    assert report.unbalanced_accounts == []


def test_seed_goes_through_the_ledger(store: SqlStore) -> None:
    assert store.seed_accounts({"b": 50, "a": 100}, "s1") == {"a": 100, "b": 50}
    assert list(store.balances()) == ["a", "b"]
    # The same seed again (a retried activity) changes nothing.
    assert store.seed_accounts({"a": 7, "b": 7}, "s1") == {"a": 100, "b": 50}
    # A new seed sets the balance, as an entry of the difference.
    assert store.seed_accounts({"a": 30}, "s2") == {"a": 30, "b": 50}
    assert [r.outcome for r in store.requests("s1:")] == ["applied"] * 2 + ["duplicate"] * 2
    report = store.report()
    assert report.by_kind["seed"].applied == 3
    assert report.unbalanced_accounts == []


def test_report_counts_and_audits(store: SqlStore) -> None:
    store.seed_accounts({"a": 100, "b": 100}, "seed")
    store.apply(Effect("t:debit", "debit", "a", -10, "a"), require_funds=True)
    store.apply(Effect("t:debit", "debit", "a", -10, "a"), require_funds=True)
    store.apply(Effect("t:credit", "credit", "b", 10, "b"))
    report = store.report()
    assert (report.requested, report.applied, report.deduplicated) == (5, 4, 1)
    assert report.duplicated == 0
    assert report.unbalanced_accounts == []
    assert report.by_kind["debit"].requested == 2
    assert report.by_kind["debit"].duplicate == 1

    # What the audit exists to catch: a key applied twice, a balance off its ledger.
    with store._transaction(write=True) as tx:
        tx.execute(
            "INSERT INTO requests (key, kind, outcome) VALUES ('t:credit', 'credit', 'applied')"
        )
        tx.execute("UPDATE accounts SET balance_cents = balance_cents + 1 WHERE id = 'b'")
    report = store.report()
    assert report.duplicated == 1
    assert report.unbalanced_accounts == ["b"]


def test_requests_by_prefix_oldest_first(store: SqlStore) -> None:
    for key in ("w1:b", "w10:a", "w1:a", "x%_:a", "w2:a"):
        store.apply(Effect(key, "note", key))
    assert [r.key for r in store.requests("w1:")] == ["w1:b", "w1:a"]
    assert [r.key for r in store.requests("w1")] == ["w1:b", "w10:a", "w1:a"]
    assert [r.key for r in store.requests("x%_")] == ["x%_:a"]  # no LIKE wildcards
    assert store.requests("nothing") == []
    records = store.requests("")
    assert len(records) == 5
    assert [r.seq for r in records] == sorted(r.seq for r in records)


def test_sqlite_keeps_its_connections_open_until_closed(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    wal = tmp_path / "store.db-wal"
    store = SqliteStore(path)
    for n in range(3):
        store.apply(Effect(f"o{n}:charge", "charge", f"o{n}", 100))
    # While a connection is open SQLite keeps the write-ahead log; a connection per
    # call (the old way) checkpointed and removed it after every call.
    assert wal.exists()
    store.close()
    # The last connection closed folds the log into the file and removes it.
    assert not wal.exists()
    reopened = SqliteStore(path)
    try:
        assert reopened.report().applied == 3
    finally:
        reopened.close()


def test_sqlite_connection_is_lent_again_after_a_failed_transaction(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "store.db")
    try:
        # Fails inside the transaction, after BEGIN IMMEDIATE: the STRICT TEXT column
        # refuses a blob.
        with pytest.raises(sqlite3.IntegrityError, match="BLOB"):
            store.apply(Effect("o1:charge", "charge", "o1", 100, detail=cast(str, b"\xff")))
        # The same pooled connection, rolled back: a new transaction starts on it.
        assert store.apply(Effect("o1:charge", "charge", "o1", 100)).outcome == "applied"
        assert [r.outcome for r in store.requests("o1")] == ["applied"]
    finally:
        store.close()


def test_concurrent_hosts_conserve_money_and_apply_each_key_once(new_store: StoreFactory) -> None:
    """Threads on three stores (hosts) run the same transfers at once, in different orders."""
    hosts = [new_store() for _ in range(3)]
    accounts = [f"acct-{i}" for i in range(4)]
    hosts[0].seed_accounts(dict.fromkeys(accounts, 1_000), "seed")
    rng = random.Random(11)
    transfers: list[tuple[str, str, str, int, bool]] = []
    for i in range(80):
        source, target = rng.sample(accounts, 2)
        transfers.append((f"t{i}", source, target, rng.randint(1, 1_000), i % 4 == 0))
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def run(worker: int) -> None:
        host = hosts[worker % len(hosts)]
        mine = list(transfers)
        random.Random(worker).shuffle(mine)
        start.wait()
        try:
            for key, source, target, amount, undo in mine:
                try:
                    debit = Effect(f"{key}:debit", "debit", source, -amount, source)
                    host.apply(debit, require_funds=True)
                except InsufficientFunds:
                    continue
                host.apply(Effect(f"{key}:credit", "credit", target, amount, target))
                if undo:
                    host.revert(f"{key}:reverse_credit", "reverse_credit", f"{key}:credit")
                    host.revert(f"{key}:refund", "refund", f"{key}:debit")
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)

    balances = hosts[1].balances()
    report = hosts[2].report()
    assert sum(balances.values()) == 4 * 1_000
    # Balances may end below 0: reverse_credit takes back a credit the target may have spent
    # meanwhile (the saga's documented behaviour); test_concurrent_debits_never_overdraw
    # covers the funds check itself.
    assert report.duplicated == 0
    assert report.unbalanced_accounts == []
    applied = Counter(r.key for r in hosts[0].requests("t") if r.outcome == "applied")
    assert set(applied.values()) == {1}
    debited = {key.split(":")[0] for key in applied if key.endswith(":debit")}
    credited = {key.split(":")[0] for key in applied if key.endswith(":credit")}
    assert debited == credited
    assert report.deduplicated > 0  # the keys really did overlap


def test_concurrent_debits_never_overdraw(new_store: StoreFactory) -> None:
    """Many different debits of one account at once: exactly as many as it covers apply."""
    hosts = [new_store() for _ in range(3)]
    hosts[0].seed_accounts({"shared": 1_000}, "seed")
    outcomes: list[str] = []
    start = threading.Barrier(30)

    def debit(n: int) -> None:
        effect = Effect(f"d{n}:debit", "debit", "shared", -100, "shared")
        start.wait()
        try:
            outcomes.append(hosts[n % 3].apply(effect, require_funds=True).outcome)
        except InsufficientFunds:
            outcomes.append("rejected")

    threads = [threading.Thread(target=debit, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert Counter(outcomes) == {"applied": 10, "rejected": 20}
    assert hosts[1].balances() == {"shared": 0}
    assert hosts[2].report().unbalanced_accounts == []


# --- exact money: overflow and negative amounts are refused before anything is written ---


def _untouched(store: SqlStore, balances: dict[str, int], entries: int) -> None:
    assert store.balances() == balances
    with store._transaction(write=False) as tx:
        assert tx.one("SELECT COUNT(*) FROM ledger") == (entries,)
    report = store.report()
    assert report.unbalanced_accounts == []
    assert store.check() == []


def test_a_credit_past_64_bits_is_refused_and_changes_nothing(store: SqlStore) -> None:
    store.seed_accounts({"rich": MAX_CENTS - 10, "poor": 5}, "seed")
    with pytest.raises(AmountOutOfRange) as refused:
        store.apply(Effect("w1:credit", "credit", "rich", 11, "rich"))
    assert refused.value.account == "rich"
    assert refused.value.amount_cents == 11
    assert "'rich'" in str(refused.value)
    assert "11 cents" in str(refused.value)
    assert "past 2^63 - 1" in str(refused.value)
    _untouched(store, {"poor": 5, "rich": MAX_CENTS - 10}, 2)
    assert [r.outcome for r in store.requests("w1:")] == ["rejected"]
    assert store.report().by_kind["credit"].rejected == 1
    # Up to the limit exactly is fine, and stays an exact integer.
    store.apply(Effect("w2:credit", "credit", "rich", 10, "rich"))
    balances = store.balances()
    assert balances["rich"] == MAX_CENTS
    assert type(balances["rich"]) is int
    assert store.report().unbalanced_accounts == []
    # The key refused earlier is not taken: it applies once there is room.
    store.apply(Effect("w3:debit", "debit", "rich", -100, "rich"), require_funds=True)
    assert store.apply(Effect("w1:credit", "credit", "rich", 11, "rich")).outcome == "applied"


def test_a_balance_cannot_go_past_64_bits_below_zero_either(store: SqlStore) -> None:
    store.seed_accounts({"a": 0}, "seed")
    # Only compensations take a balance below zero; make one very negative directly.
    with store._transaction(write=True) as tx:
        tx.execute("UPDATE accounts SET balance_cents = ? WHERE id = 'a'", (-MAX_CENTS + 5,))
        tx.execute(
            "INSERT INTO ledger (key, kind, subject, account, amount_cents, detail)"
            " VALUES ('fix', 'fix', 'a', 'a', ?, '')",
            (-MAX_CENTS + 5,),
        )
    with pytest.raises(AmountOutOfRange, match="'a'"):
        store.apply(Effect("w1:debit", "debit", "a", -6, "a"))
    store.apply(Effect("w2:credit", "credit", "a", 6, "a"))
    store.apply(Effect("w3:debit", "debit", "a", -11, "a"))
    assert store.balances() == {"a": -MAX_CENTS}
    # The undo of a credit is refused the same way, before it writes.
    with pytest.raises(AmountOutOfRange, match="'a'"):
        store.revert("w2:reverse_credit", "reverse_credit", "w2:credit")
    assert [r.outcome for r in store.requests("w2:")] == ["applied", "rejected"]
    assert store.balances() == {"a": -MAX_CENTS}
    assert store.check() == []


@pytest.mark.parametrize("amount", [2**63, -(2**63), 2**64, 10**30])
def test_an_amount_past_64_bits_is_refused(store: SqlStore, amount: int) -> None:
    store.seed_accounts({"a": 100}, "seed")
    with pytest.raises(AmountOutOfRange) as refused:
        store.apply(Effect("w1:credit", "credit", "a", amount, "a"))
    assert (refused.value.account, refused.value.amount_cents) == ("a", amount)
    assert str(amount) in str(refused.value)
    # A charge (no account) past 64 bits: what an order total past 64 bits would be.
    with pytest.raises(AmountOutOfRange) as refused:
        store.apply(Effect("o1:charge", "charge", "o1", abs(amount)))
    assert refused.value.account is None
    assert str(abs(amount)) in str(refused.value)
    _untouched(store, {"a": 100}, 1)
    assert [r.outcome for r in store.requests("w1:")] == ["rejected"]


def test_a_negative_charge_is_refused(store: SqlStore) -> None:
    with pytest.raises(NegativeAmount, match="-5 cents is negative"):
        store.apply(Effect("o1:charge", "charge", "o1", -5))
    _untouched(store, {}, 0)
    # Refused by the schema too, whatever writes to it.
    with (
        pytest.raises(Exception, match=r"(?i)check constraint"),
        store._transaction(write=True) as tx,
    ):
        tx.execute(
            "INSERT INTO ledger (key, kind, subject, account, amount_cents, detail)"
            " VALUES ('x', 'charge', 'o', NULL, -1, '')"
        )


@pytest.mark.parametrize(
    ("seed", "error", "account", "text"),
    [
        ({"a": 10, "b": -1}, NegativeAmount, "b", "-1 cents is negative"),
        ({"a": 10, "b": 2**63}, AmountOutOfRange, "b", "past 2^63 - 1"),
        ({"a": -(2**70), "b": 1}, NegativeAmount, "a", "is negative"),
    ],
)
def test_a_bad_seed_is_refused_as_a_whole(
    store: SqlStore, seed: dict[str, int], error: type[Exception], account: str, text: str
) -> None:
    store.seed_accounts({"a": 1}, "s0")
    with pytest.raises(error) as refused:
        store.seed_accounts(seed, "s1")
    assert isinstance(refused.value, StoreError)
    assert refused.value.account == account
    assert text in str(refused.value)
    # Not even the good accounts of that seed changed, and no new account appeared.
    _untouched(store, {"a": 1}, 1)
    assert [(r.key, r.outcome) for r in store.requests("s1:")] == [(f"s1:{account}", "rejected")]
    assert store.report().by_kind["seed"].rejected == 1


def test_a_seed_whose_entry_would_pass_64_bits_is_refused(store: SqlStore) -> None:
    store.seed_accounts({"a": 0}, "s0")
    store.apply(Effect("w:credit", "credit", "a", 50, "a"))
    store.revert("w:reverse", "reverse_credit", "w:credit")
    store.apply(Effect("w2:credit", "credit", "a", 7, "a"))
    with store._transaction(write=True) as tx:
        tx.execute("UPDATE accounts SET balance_cents = -5 WHERE id = 'a'")
        tx.execute(
            "INSERT INTO ledger (key, kind, subject, account, amount_cents, detail)"
            " VALUES ('fix', 'fix', 'a', 'a', -12, '')"
        )
    # From -5 to the maximum is a change of 2^63 + 4: the entry cannot be written.
    with pytest.raises(AmountOutOfRange, match="from -5 to 9223372036854775807 cents"):
        store.seed_accounts({"a": MAX_CENTS}, "s1")
    assert store.seed_accounts({"a": MAX_CENTS - 5}, "s2") == {"a": MAX_CENTS - 5}
    assert store.check() == []


def test_check_reports_what_the_audit_finds(store: SqlStore) -> None:
    store.seed_accounts({"a": 100}, "seed")
    assert store.check() == []
    with store._transaction(write=True) as tx:
        tx.execute("UPDATE accounts SET balance_cents = 99 WHERE id = 'a'")
    assert store.check() == ["account 'a': balance differs from the sum of its ledger entries"]


# --- SQLite stores made by the previous version ----------------------------------------

# The schema before STRICT tables, as the previous version created it.
_OLD_SQLITE_SCHEMA = """
CREATE TABLE accounts (id TEXT PRIMARY KEY, balance_cents INTEGER NOT NULL);
CREATE TABLE ledger (
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
CREATE TABLE requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX requests_key ON requests (key);
"""


def old_store(path: Path, *, overflowed: bool) -> None:
    """A store file as the previous version left it, after the same calls it made.

    With ``overflowed``, a credit took ``rich`` past 64 bits: SQLite turned the
    balance into a float, which the previous version then kept.
    """
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=WAL")  # as the previous version left it too
        conn.executescript(_OLD_SQLITE_SCHEMA)
        conn.execute("INSERT INTO accounts VALUES ('rich', 0), ('poor', 0)")
        for key, account, amount in [
            ("seed:rich", "rich", MAX_CENTS - 1),
            ("seed:poor", "poor", 500),
            *([("t1:credit", "rich", 10)] if overflowed else []),
        ]:
            conn.execute(
                "INSERT INTO ledger (key, kind, subject, account, amount_cents, detail)"
                " VALUES (?, 'credit', ?, ?, ?, '')",
                (key, account, account, amount),
            )
            conn.execute(
                "UPDATE accounts SET balance_cents = balance_cents + ? WHERE id = ?",
                (amount, account),
            )
            conn.execute(
                "INSERT INTO requests (key, kind, outcome) VALUES (?, 'credit', 'applied')",
                (key,),
            )
    conn.close()


def test_the_old_way_really_made_a_float(tmp_path: Path) -> None:
    old_store(tmp_path / "store.db", overflowed=True)
    with sqlite3.connect(tmp_path / "store.db") as conn:
        assert conn.execute(
            "SELECT typeof(balance_cents) FROM accounts WHERE id = 'rich'"
        ).fetchone() == ("real",)
    conn.close()


def test_an_old_sqlite_store_is_upgraded_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old_store(path, overflowed=False)
    store = SqliteStore(path)
    try:
        assert store.balances() == {"poor": 500, "rich": MAX_CENTS - 1}
        assert store.check() == []
        assert [r.key for r in store.requests("seed:")] == ["seed:rich", "seed:poor"]
        # Now refused instead of turning into a float.
        with pytest.raises(AmountOutOfRange, match="'rich'"):
            store.apply(Effect("t1:credit", "credit", "rich", 10, "rich"))
        receipt = store.apply(Effect("t2:credit", "credit", "poor", 10, "poor"))
        assert receipt.seq == 3  # numbering goes on from the old entries
        with store._transaction(write=True) as tx, pytest.raises(sqlite3.IntegrityError):
            tx.execute("UPDATE accounts SET balance_cents = balance_cents + 10 WHERE id = 'rich'")
    finally:
        store.close()
    with sqlite3.connect(path) as conn:
        strict = {row[1]: row[5] for row in conn.execute("PRAGMA table_list")}
        assert (strict["accounts"], strict["ledger"], strict["requests"]) == (1, 1, 1)
        assert conn.execute("PRAGMA foreign_key_list(ledger)").fetchall()[0][2] == "accounts"
    conn.close()
    SqliteStore(path).close()  # opening it again changes nothing


def test_workers_opening_an_old_sqlite_store_at_once_upgrade_it_once(tmp_path: Path) -> None:
    """The services of one host share the file and start together after an upgrade."""
    path = tmp_path / "store.db"
    old_store(path, overflowed=False)
    opened: list[SqliteStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(SqliteStore(path))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == []
        assert len(opened) == 4
        assert [store.balances() for store in opened] == [{"poor": 500, "rich": MAX_CENTS - 1}] * 4
        assert opened[0].report().applied == 2
        assert opened[1].check() == []
    finally:
        for store in opened:
            store.close()
    assert is_strict(path)


def test_an_old_sqlite_store_holding_a_float_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old_store(path, overflowed=True)
    with sqlite3.connect(path) as conn:
        before = conn.execute("SELECT * FROM accounts ORDER BY id").fetchall()
    conn.close()
    with pytest.raises(StoreUnavailable) as refused:
        SqliteStore(path)
    message = str(refused.value)
    assert message.startswith(f"store.path {path}: made by an earlier version")
    assert "accounts 'rich': balance_cents is real 9.223372036854776e+18" in message
    # Left as it was, for the operator.
    with sqlite3.connect(path) as conn:
        assert {row[1]: row[5] for row in conn.execute("PRAGMA table_list")}["accounts"] == 0
        assert conn.execute("SELECT * FROM accounts ORDER BY id").fetchall() == before
    conn.close()


# --- PostgreSQL only ----------------------------------------------------------------


def test_postgres_refuses_bad_credentials_without_showing_them(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.url(postgres.create_database())
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password-4711\n")
    with pytest.raises(StoreUnavailable) as error:
        PostgresStore(url, wrong)
    message = str(error.value)
    assert message.startswith(f"store.url {url}: ")
    assert "password authentication failed" in message
    assert "not-the-password-4711" not in message
    assert postgres.password not in message

    empty = tmp_path / "empty"
    empty.write_text("")
    with pytest.raises(StoreUnavailable, match="no password supplied"):
        PostgresStore(url, empty)
    with pytest.raises(StoreUnavailable, match=r"store.password_file .*missing: No such file"):
        PostgresStore(url, tmp_path / "missing")
    with pytest.raises(StoreUnavailable, match="must not carry a password"):
        PostgresStore(url.replace("@", ":secret@"))


def test_postgres_unreachable_is_unavailable(postgres: PostgresServer) -> None:
    url = f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    with pytest.raises(StoreUnavailable, match=re.escape(f"store.url {url}: ") + ".*refused"):
        PostgresStore(url, postgres.password_file)


def test_postgres_outage_is_retryable_and_recovers(postgres: PostgresServer) -> None:
    url = postgres.url(postgres.create_database())
    store = PostgresStore(url, postgres.password_file, pool_timeout_seconds=2)
    try:
        store.seed_accounts({"a": 100}, "seed")
        postgres.restart()
        # The pool replaces the connections the restart broke.
        assert store.balances() == {"a": 100}
        postgres.stop()
        try:
            with pytest.raises(Exception) as error:  # noqa: PT011 (any error but StoreError)
                store.apply(Effect("w:credit", "credit", "a", 5, "a"))
            # Not a StoreError: the activity fails retryably and Temporal tries again.
            assert not isinstance(error.value, StoreError)
        finally:
            postgres.restart()
        assert store.apply(Effect("w:credit", "credit", "a", 5, "a")).outcome == "applied"
        assert store.balances() == {"a": 105}
    finally:
        store.close()


def test_two_stores_create_the_schema_at_once(postgres: PostgresServer) -> None:
    url = postgres.url(postgres.create_database())
    stores: list[PostgresStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            stores.append(PostgresStore(url, postgres.password_file))
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert errors == []


def test_balances_direct_reads_postgres(
    postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres.url(postgres.create_database())
    store = PostgresStore(url, postgres.password_file)
    store.seed_accounts({"alice": 700, "bob": 300}, "seed")
    store.close()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"store: {{url: '{url}', password_file: {postgres.password_file}, path: /nonexistent}}\n"
    )
    assert main(["balances", "--direct", "--config", str(config)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["accounts"] == {"alice": 700, "bob": 300}
    assert printed["total_cents"] == 1_000
    assert printed["side_effects"]["unbalanced_accounts"] == []


def test_a_postgres_store_made_by_the_previous_version_gets_the_constraint(
    postgres: PostgresServer,
) -> None:
    url = postgres.url(postgres.create_database())
    old_ledger = (
        "CREATE TABLE accounts (id TEXT PRIMARY KEY, balance_cents BIGINT NOT NULL);"
        "CREATE TABLE ledger (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, subject TEXT NOT NULL,"
        " account TEXT REFERENCES accounts(id), amount_cents BIGINT NOT NULL,"
        " detail TEXT NOT NULL, reverts TEXT, created_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    with psycopg.connect(url, password=postgres.password, autocommit=True) as conn:
        conn.execute(old_ledger)
        conn.execute("INSERT INTO accounts VALUES ('a', 5)")
        conn.execute(
            "INSERT INTO ledger (key, kind, subject, account, amount_cents, detail)"
            " VALUES ('s:a', 'seed', 'a', 'a', 5, ''), ('o:charge', 'charge', 'o', NULL, 7, '')"
        )
    store = PostgresStore(url, postgres.password_file)
    try:
        assert store.balances() == {"a": 5}
        assert store.check() == []
        with pytest.raises(psycopg.errors.CheckViolation), store._transaction(write=True) as tx:
            tx.execute(
                "INSERT INTO ledger (key, kind, subject, account, amount_cents, detail)"
                " VALUES ('x', 'charge', 'o', NULL, -1, '')"
            )
    finally:
        store.close()
    PostgresStore(url, postgres.password_file).close()  # the second start adds nothing

    # A row that breaks the rule stops the start, and says why.
    url = postgres.url(postgres.create_database())
    with psycopg.connect(url, password=postgres.password, autocommit=True) as conn:
        conn.execute(old_ledger)
        conn.execute(
            "INSERT INTO ledger (key, kind, subject, account, amount_cents, detail)"
            " VALUES ('o:charge', 'charge', 'o', NULL, -7, '')"
        )
    with pytest.raises(StoreUnavailable, match="ledger_unowned_amount_not_negative"):
        PostgresStore(url, postgres.password_file)


# --- temporal-workers check, and the worker's start, on stores made the old way ----------


def check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], str]:
    code = main(["check", "--config", str(config)])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def sqlite_config(tmp_path: Path, store_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"store: {{path: {store_path}}}\n")
    return config


def is_strict(path: Path) -> bool:
    with sqlite3.connect(path) as conn:
        strict = bool({row[1]: row[5] for row in conn.execute("PRAGMA table_list")}["accounts"])
    conn.close()
    return strict


def test_check_passes_a_sound_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    store.seed_accounts({"a": 100}, "seed")
    store.close()
    code, printed, _ = check(sqlite_config(tmp_path, path), capsys)
    assert code == 0
    assert printed == {"store": str(path), "ok": True, "problems": [], "notes": []}


def test_check_reports_a_float_balance_of_an_old_store_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "store.db"
    old_store(path, overflowed=True)
    code, printed, err = check(sqlite_config(tmp_path, path), capsys)
    assert code == 1
    assert printed["ok"] is False
    assert printed["problems"] == [
        "accounts 'rich': balance_cents is real 9.223372036854776e+18, not integer cents"
    ]
    assert "rebuild its tables" in printed["notes"][0]
    assert "once the problems are fixed" in printed["notes"][0]
    assert f"store {path}: accounts 'rich': balance_cents is real" in err
    assert not is_strict(path)


def test_check_passes_a_sound_old_store_and_says_it_will_be_upgraded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "store.db"
    old_store(path, overflowed=False)
    code, printed, _ = check(sqlite_config(tmp_path, path), capsys)
    assert code == 0
    assert printed["problems"] == []
    assert "at their next start" in printed["notes"][0]
    assert not is_strict(path)  # the check itself changed nothing
    SqliteStore(path).close()
    assert is_strict(path)
    code, printed, _ = check(sqlite_config(tmp_path, path), capsys)
    assert (code, printed["notes"]) == (0, [])


def test_check_reports_audit_failures_and_missing_stores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    store.seed_accounts({"a": 100}, "seed")
    with store._transaction(write=True) as tx:
        tx.execute("UPDATE accounts SET balance_cents = 1 WHERE id = 'a'")
    store.close()
    code, printed, _ = check(sqlite_config(tmp_path, path), capsys)
    assert code == 1
    assert printed["problems"] == [
        "account 'a': balance differs from the sum of its ledger entries"
    ]
    assert main(["check", "--config", str(sqlite_config(tmp_path, tmp_path / "none.db"))]) == 2
    assert "none.db: no such file" in capsys.readouterr().err


def test_check_reads_postgres(
    postgres: PostgresServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres.url(postgres.create_database())
    store = PostgresStore(url, postgres.password_file)
    store.seed_accounts({"a": MAX_CENTS, "b": MAX_CENTS}, "seed")
    config = tmp_path / "config.yaml"
    config.write_text(f"store: {{url: '{url}', password_file: {postgres.password_file}}}\n")
    code, printed, _ = check(config, capsys)
    assert (code, printed) == (0, {"store": url, "ok": True, "problems": [], "notes": []})
    with store._transaction(write=True) as tx:
        tx.execute("UPDATE accounts SET balance_cents = 0 WHERE id = 'b'")
    store.close()
    code, printed, _ = check(config, capsys)
    assert code == 1
    assert printed["problems"] == [
        "account 'b': balance differs from the sum of its ledger entries"
    ]


def test_a_worker_does_not_start_on_an_old_store_holding_a_float(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old_store(path, overflowed=True)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"temporal: {{address: '127.0.0.1:{free_port()}'}}\n"
        "metrics: {bind_address: null}\n"
        f"store: {{path: {path}}}\n"
    )
    done = subprocess.run(
        [console_script(), "serve", "--config", str(config)],
        env=subprocess_env(config),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Refused before it connects to Temporal: nothing ever used the float.
    assert done.returncode == 1
    assert "made by an earlier version and holds values that are not integer cents" in (done.stderr)
    assert "accounts 'rich': balance_cents is real 9.223372036854776e+18" in done.stderr
    assert not is_strict(path)
