"""Prometheus' targets come from the inventory: every server and worker host, each with its own ports,
and each worker host where its workers listen."""

from __future__ import annotations

from pathlib import Path

import yaml
from render import ROOT, role_vars_play, run_local_playbook

# Local hosts, grouped as the inventories below name them.
LOCAL = """
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  children:
"""

INVENTORY = LOCAL + """    temporal_server:
      hosts:
        server: {temporal_advertise_address: 10.0.0.10, temporal_dev_server_metrics_port: 9300}
    temporal_workers:
      hosts:
        worker1: {temporal_advertise_address: 10.0.0.21}
        worker2:
          temporal_advertise_address: 10.0.0.22
          temporal_worker_queues: [{name: orders, metrics_port: 9600}]
    temporal_monitoring:
      hosts:
        monitoring: {temporal_advertise_address: 10.0.0.30}
"""

TASKS = """  tasks:
    - ansible.builtin.template:
        src: {root}/roles/prometheus/templates/temporal.yml.j2
        dest: {out}
"""


def render(tmp_path: Path, inventory: str = INVENTORY, host: str = "monitoring") -> dict:
    tmp_path.mkdir(exist_ok=True)
    out = tmp_path / "temporal.yml"
    playbook = role_vars_play(host, "_common/vars/main.yml", "prometheus/defaults/main.yml", "prometheus/vars/main.yml")
    run_local_playbook(tmp_path, inventory, playbook + TASKS.format(root=ROOT, out=out))
    return yaml.safe_load(out.read_text())


def targets(config: dict, job: str) -> dict[str, dict]:
    (scrape,) = [s for s in config["scrape_configs"] if s["job_name"] == job]
    return {t: static["labels"] for static in scrape["static_configs"] for t in static["targets"]}


def test_every_inventory_host_is_a_target_with_its_own_ports(tmp_path: Path) -> None:
    config = render(tmp_path)
    assert targets(config, "temporal-server") == {"10.0.0.10:9300": {"host": "server"}}
    workers = targets(config, "temporal-workers")
    # worker1 keeps the worker role's default queues; worker2 serves one queue on its own port.
    assert {t for t in workers if t.startswith("10.0.0.21:")} == {"10.0.0.21:9464", "10.0.0.21:9465", "10.0.0.21:9466", "10.0.0.21:9467"}
    assert {t: l for t, l in workers.items() if t.startswith("10.0.0.22:")} == {"10.0.0.22:9600": {"host": "worker2", "task_queue": "orders"}}


def test_a_worker_on_the_prometheus_host_is_scraped_over_loopback_others_where_they_listen(tmp_path: Path) -> None:
    # worker1 also runs Prometheus, with the other monitoring host: it listens on its own address.
    # worker2 runs Prometheus alone: its workers stay on loopback, scraped from itself.
    # worker3 names its address, worker4 listens on every address.
    inventory = LOCAL + """    temporal_server:
      hosts:
        server: {temporal_advertise_address: 10.0.0.10}
    temporal_workers:
      hosts:
        worker1: {temporal_advertise_address: 10.0.0.21}
        worker3: {temporal_advertise_address: 10.0.0.23, temporal_worker_metrics_ip: 10.9.9.9}
        worker4: {temporal_advertise_address: 10.0.0.24, temporal_worker_metrics_ip: 0.0.0.0}
    temporal_monitoring:
      hosts:
        worker1: {}
        monitoring: {temporal_advertise_address: 10.0.0.30}
"""
    from_worker1 = {t.split(":")[0] for t in targets(render(tmp_path / "w1", inventory, "worker1"), "temporal-workers")}
    assert from_worker1 == {"10.0.0.21", "10.9.9.9", "10.0.0.24"}
    alone = LOCAL + """    temporal_workers:
      hosts:
        worker2: {temporal_advertise_address: 10.0.0.22}
    temporal_monitoring:
      hosts:
        worker2: {}
"""
    assert {t.split(":")[0] for t in targets(render(tmp_path / "w2", alone, "worker2"), "temporal-workers")} == {"127.0.0.1"}
