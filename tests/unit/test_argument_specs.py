"""meta/argument_specs.yml is the one documentation of every public variable: keep it in step with defaults/."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"
PUBLIC_ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "defaults" / "main.yml").exists() and not p.name.startswith("_"))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_every_default_is_documented_with_the_same_value(role: str) -> None:
    defaults = load(ROLES_DIR / role / "defaults" / "main.yml")
    specs = load(ROLES_DIR / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(specs), (
        f"{role}: only in defaults {sorted(set(defaults) - set(specs))}, only in argument_specs {sorted(set(specs) - set(defaults))}"
    )
    for name, value in defaults.items():
        spec = specs[name]
        if spec.get("type") == "bool" and isinstance(value, str) and value.startswith("{{"):
            # A bool's default must be a boolean in the documentation (antsibull-docs refuses an expression), so a
            # computed one is stated in the description, verbatim, instead.
            description = " ".join(spec["description"] if isinstance(spec["description"], list) else [spec["description"]])
            assert "default" not in spec, f"{role}: {name} is a bool with a computed default: state it in the description"
            assert f"C({value})" in description, f"{role}: the description of {name} does not give its default C({value})"
            continue
        assert spec.get("default") == value, f"{role}: {name} defaults to {value!r} but argument_specs says {spec.get('default')!r}"
        assert spec.get("description"), f"{role}: {name} has no description"
        assert spec.get("type"), f"{role}: {name} has no type"
        if "choices" in spec:
            assert value in spec["choices"], f"{role}: default {value!r} of {name} is not among its choices"


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_public_variables_carry_the_role_prefix(role: str) -> None:
    defaults = load(ROLES_DIR / role / "defaults" / "main.yml")
    prefix = f"temporal_{role}_" if role != "stack" else "temporal_"
    wrong = [name for name in defaults if not name.startswith(prefix)]
    assert not wrong, f"{role}: public variables must start with {prefix}: {wrong}"


@pytest.mark.parametrize("role", PUBLIC_ROLES)
def test_internal_variables_are_underscored(role: str) -> None:
    internal = ROLES_DIR / role / "vars" / "main.yml"
    if internal.exists():
        wrong = [name for name in load(internal) if not name.startswith("_")]
        assert not wrong, f"{role}: vars/main.yml holds internals, which start with an underscore: {wrong}"



def test_prometheus_falls_back_to_the_worker_roles_own_queues() -> None:
    """Prometheus scrapes hosts that keep the worker defaults at the ports those defaults use."""
    workers = load(ROLES_DIR / "worker" / "defaults" / "main.yml")["temporal_worker_queues"]
    scraped = load(ROLES_DIR / "prometheus" / "defaults" / "main.yml")["temporal_prometheus_worker_queues"]
    assert scraped == workers
