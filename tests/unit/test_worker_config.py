"""The workers' config.yaml as the worker role renders it: fault injection only when asked for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from render import BOX_INVENTORY, role_values

FILES = ("_common/vars/main.yml", "worker/defaults/main.yml", "worker/vars/main.yml")


def render(tmp_path: Path, *extra: str) -> dict:
    return role_values(tmp_path, BOX_INVENTORY, FILES, {"config": "{{ _temporal_worker_config }}"}, *extra)["box"]["config"]


def test_fault_injection_is_left_out_by_default(tmp_path: Path) -> None:
    config = render(tmp_path)
    assert "faults" not in config
    assert config["metrics"]["queue_bind_addresses"]["orders"] == "127.0.0.1:9464"


@pytest.mark.parametrize("value", ["true", "True", "1"])
def test_fault_injection_turns_faults_on(tmp_path: Path, value: str) -> None:
    assert render(tmp_path, "-e", f"temporal_worker_fault_injection={value}")["faults"] == {"enabled": True}


def test_fault_rates_of_config_extra_stay_beside_the_switch(tmp_path: Path) -> None:
    extra = {"temporal_worker_fault_injection": True, "temporal_worker_config_extra": {"faults": {"activities": {"charge": {"error_rate": 0.1}}}}}
    config = render(tmp_path, "-e", json.dumps(extra))
    assert config["faults"] == {"enabled": True, "activities": {"charge": {"error_rate": 0.1}}}
