"""Defaults that follow the inventory when the stack spans hosts: the server listens beyond loopback,
the worker hosts find the store they share, the database lets in exactly those hosts, and the workers'
metrics listen beyond loopback only for a Prometheus on another host."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from render import role_values

MULTI_HOST = {
    "all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "children": {
            "temporal_server": {"hosts": {"server": {"temporal_advertise_address": "10.0.0.10"}}},
            "temporal_database": {
                "hosts": {
                    "db": {
                        "temporal_advertise_address": "10.0.0.5",
                        "temporal_postgresql_worker_store": True,
                        "temporal_postgresql_worker_store_password": "s3cret",
                        "temporal_postgresql_port": 5433,
                    }
                }
            },
            "temporal_workers": {
                "hosts": {"worker1": {"temporal_advertise_address": "10.0.0.21"}, "worker2": {"temporal_advertise_address": "10.0.0.22"}}
            },
            "temporal_monitoring": {"hosts": {"monitoring": {"temporal_advertise_address": "10.0.0.30"}}},
        },
    }
}

SINGLE_HOST = {"all": {"vars": MULTI_HOST["all"]["vars"], "hosts": {"solo": {}}}}

FILES = ("_common/vars/main.yml", "dev_server/defaults/main.yml", "worker/defaults/main.yml", "postgresql/defaults/main.yml")
VALUES = {
    "dev_server_ip": "{{ temporal_dev_server_ip }}",
    "worker_address": "{{ temporal_worker_address }}",
    "store_url": "{{ temporal_worker_store_url }}",
    "store_password": "{{ temporal_worker_store_password }}",
    "worker_metrics_ip": "{{ temporal_worker_metrics_ip }}",
    "store_networks": "{{ temporal_postgresql_worker_store_allowed_networks }}",
    "server_databases": "{{ temporal_postgresql_server_databases | bool }}",
}


def render(tmp_path: Path, inventory: dict, *extra: str) -> dict[str, dict]:
    return role_values(tmp_path, yaml.safe_dump(inventory), FILES, VALUES, *extra)


@pytest.fixture(scope="module")
def multi_host(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    return render(tmp_path_factory.mktemp("multi"), MULTI_HOST)


def test_the_dev_server_listens_beyond_loopback_only_when_other_hosts_use_it(multi_host, tmp_path: Path) -> None:
    assert multi_host["server"]["dev_server_ip"] == "0.0.0.0"
    assert render(tmp_path, SINGLE_HOST)["solo"]["dev_server_ip"] == "127.0.0.1"


def test_worker_hosts_share_the_store_of_the_database_host(multi_host) -> None:
    for worker in ("worker1", "worker2"):
        assert multi_host[worker]["store_url"] == "postgresql://temporal_workers@10.0.0.5:5433/temporal_workers"
        assert multi_host[worker]["store_password"] == "s3cret"
        assert multi_host[worker]["worker_address"] == "10.0.0.10:7233"


def test_the_store_lets_in_the_worker_hosts(multi_host) -> None:
    assert multi_host["db"]["store_networks"] == ["10.0.0.21/32", "10.0.0.22/32"]


def test_without_a_store_host_each_worker_keeps_its_sqlite_file(tmp_path: Path) -> None:
    solo = render(tmp_path, SINGLE_HOST)["solo"]
    assert solo["store_url"] == ""
    assert solo["store_password"] == ""


def test_the_server_databases_follow_the_mode(tmp_path: Path) -> None:
    assert render(tmp_path, SINGLE_HOST)["solo"]["server_databases"] is True
    assert render(tmp_path, SINGLE_HOST, "-e", "temporal_mode=dev")["solo"]["server_databases"] is False


def test_worker_metrics_listen_on_the_host_address_for_a_prometheus_elsewhere(multi_host) -> None:
    assert multi_host["worker1"]["worker_metrics_ip"] == "10.0.0.21"
    assert multi_host["worker2"]["worker_metrics_ip"] == "10.0.0.22"


def test_worker_metrics_stay_on_loopback_without_a_prometheus_elsewhere(tmp_path: Path) -> None:
    assert render(tmp_path / "solo", SINGLE_HOST)["solo"]["worker_metrics_ip"] == "127.0.0.1"
    # Prometheus on the worker host itself scrapes it over loopback.
    together = {"all": {"vars": MULTI_HOST["all"]["vars"], "children": {
        "temporal_workers": {"hosts": {"box": {"temporal_advertise_address": "10.0.0.40"}}},
        "temporal_monitoring": {"hosts": {"box": {}}},
    }}}  # fmt: skip
    assert render(tmp_path / "together", together)["box"]["worker_metrics_ip"] == "127.0.0.1"
