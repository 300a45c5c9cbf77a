"""Two worker processes' worth of sagas workers sharing one PostgreSQL store."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from durable_temporal_workers.config import (
    Config,
    FaultRates,
    FaultsConfig,
    StoreConfig,
)
from durable_temporal_workers.models import SAGAS, SeedAccounts, Transfer
from durable_temporal_workers.store_postgres import PostgresStore
from durable_temporal_workers.workflows.sagas import SeedAccountsWorkflow

from .conftest import POSTGRES_NAMESPACE, on_namespace, serving, transfer_outcome
from .postgres import PostgresServer


@pytest.fixture
async def two_hosts(
    workflow_env: WorkflowEnvironment, config: Config, postgres: PostgresServer
) -> AsyncIterator[tuple[Client, PostgresStore]]:
    """Two run_workers, each with its own PostgresStore on one database, on one queue."""
    store_config = StoreConfig(
        url=postgres.url(postgres.create_database()), password_file=str(postgres.password_file)
    )
    host_config = on_namespace(
        config,
        POSTGRES_NAMESPACE,
        store=store_config,
        faults=FaultsConfig(
            enabled=True,
            activities=dict.fromkeys(
                ("debit", "credit", "refund", "reverse_credit"),
                FaultRates(fail_before_rate=0.1, fail_after_rate=0.1),
            ),
        ),
    )
    async with serving(workflow_env, host_config, [SAGAS], hosts=2) as client:
        assert store_config.url is not None
        store = PostgresStore(store_config.url, store_config.password_file)
        yield client, store
        store.close()


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
