"""Defaults that follow a production cluster's inventory: the clients of the worker hosts are spread over the
server hosts, a server host uses its own frontend, the server hosts find the database host, and PostgreSQL
allows as many connections as the inventory's pools may open."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from render import role_values

LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}


def cluster(servers: int, layout: str) -> dict:
    return {
        "all": {
            "vars": LOCAL | {"temporal_mode": "production"},
            "children": {
                "temporal_database": {
                    "hosts": {"db": {"temporal_advertise_address": "10.0.0.5", "temporal_postgresql_worker_store": True}}
                },
                "temporal_server": {
                    "vars": {"temporal_server_unit_layout": layout},
                    "hosts": {f"server{n}": {"temporal_advertise_address": f"10.0.0.{10 + n}"} for n in range(1, servers + 1)},
                },
                "temporal_workers": {
                    "hosts": {f"worker{n}": {"temporal_advertise_address": f"10.0.0.{20 + n}"} for n in range(1, 4)}
                },
            },
        }
    }


FILES = ("_common/vars/main.yml", "server/defaults/main.yml", "worker/defaults/main.yml", "postgresql/defaults/main.yml",
         "postgresql/vars/main.yml")  # fmt: skip
# The role files load as play variables here, above the inventory's: the store flag goes in as an extra variable.
STORE = ("-e", '{"temporal_postgresql_worker_store": true}')
VALUES = {
    "worker_address": "{{ temporal_worker_address }}",
    "db_host": "{{ temporal_server_db_host }}",
    "max_connections": "{{ temporal_postgresql_max_connections | int }}",
}


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return role_values(tmp_path_factory.mktemp("cluster"), yaml.safe_dump(cluster(2, "per_service")), FILES, VALUES, *STORE)


def test_a_server_host_uses_its_own_frontend_and_the_worker_hosts_are_spread(two_servers) -> None:
    assert two_servers["server1"]["worker_address"] == "10.0.0.11:7233"
    assert two_servers["server2"]["worker_address"] == "10.0.0.12:7233"
    used = [two_servers[f"worker{n}"]["worker_address"] for n in range(1, 4)]
    assert set(used) == {"10.0.0.11:7233", "10.0.0.12:7233"}, used


def test_the_server_hosts_find_the_database_host(two_servers) -> None:
    assert {two_servers[f"server{n}"]["db_host"] for n in (1, 2)} == {"10.0.0.5"}
    # On the database host itself, loopback.
    assert two_servers["db"]["db_host"] == "127.0.0.1"


def test_postgresql_allows_every_pool_of_the_inventory(two_servers, tmp_path: Path) -> None:
    # 2 hosts x 4 processes x (20 + 10) + 3 worker hosts x 4 queues x 10 + 20.
    assert two_servers["db"]["max_connections"] == 2 * 4 * 30 + 3 * 4 * 10 + 20
    single = role_values(tmp_path, yaml.safe_dump(cluster(1, "single")), FILES, VALUES, *STORE)
    # One process of 30, 120 for the workers, 20: more than PostgreSQL's own 100.
    assert single["db"]["max_connections"] == 30 + 120 + 20
