"""Two worker processes' worth of sagas workers sharing one PostgreSQL store."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from durable_temporal_workers.catalog import load_registry
from durable_temporal_workers.config import (
    Config,
    FaultRates,
    FaultsConfig,
    MetricsConfig,
    StoreConfig,
)
from durable_temporal_workers.models import SAGAS, SeedAccounts, Transfer
from durable_temporal_workers.store_postgres import PostgresStore
from durable_temporal_workers.worker import run_workers
from durable_temporal_workers.workflows.sagas import SeedAccountsWorkflow

from .conftest import POSTGRES_NAMESPACE, transfer_outcome
from .postgres import PostgresServer


@pytest.fixture
async def two_hosts(
    config: Config, postgres: PostgresServer
) -> AsyncIterator[tuple[Client, PostgresStore]]:
    """Two run_workers, each with its own PostgresStore on one database, on one queue."""
    store_config = StoreConfig(
        url=postgres.url(postgres.create_database()), password_file=str(postgres.password_file)
    )
    host_config = dataclasses.replace(
        config,
        temporal=dataclasses.replace(config.temporal, namespace=POSTGRES_NAMESPACE),
        metrics=MetricsConfig(bind_address=None),
        store=store_config,
        faults=FaultsConfig(
            enabled=True,
            activities=dict.fromkeys(
                ("debit", "credit", "refund", "reverse_credit"),
                FaultRates(fail_before_rate=0.1, fail_after_rate=0.1),
            ),
        ),
    )
    stop = asyncio.Event()
    hosts = [
        asyncio.create_task(run_workers(host_config, load_registry(), [SAGAS], stop))
        for _ in range(2)
    ]
    client = await Client.connect(config.temporal.address, namespace=POSTGRES_NAMESPACE)
    assert store_config.url is not None
    store = PostgresStore(store_config.url, store_config.password_file)
    yield client, store
    store.close()
    stop.set()
    assert await asyncio.gather(*hosts) == [0, 0]


async def test_two_hosts_conserve_money(two_hosts: tuple[Client, PostgresStore]) -> None:
    client, store = two_hosts
    accounts = [f"acct-{i}" for i in range(5)]
    await client.execute_workflow(
        SeedAccountsWorkflow.run,
        SeedAccounts(dict.fromkeys(accounts, 10_000)),
        id="pg-seed",
        task_queue=SAGAS,
    )
    rng = random.Random(3)

    async def transfer(i: int) -> str:
        source, target = rng.sample(accounts, 2)
        plan = {"fail_after_commit_times": {"credit": 10}} if i % 6 == 0 else {}
        transfer = Transfer(source, target, rng.randint(1, 6_000), **plan)
        return await transfer_outcome(client, transfer, f"pg-transfer-{i}")

    outcomes = await asyncio.gather(*(transfer(i) for i in range(60)))

    balances = store.balances()
    report = store.report()
    assert sum(balances.values()) == 5 * 10_000
    # Balances may end below 0: reverse_credit takes back a credit the target may have spent
    # meanwhile (the saga's documented behaviour, see test_store.py).
    assert report.duplicated == 0
    assert report.unbalanced_accounts == []
    assert outcomes.count("completed") > 0
    assert outcomes.count("compensated") >= 60 // 6
