"""The wheel builds offline, with the console script and type marker in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_builds_offline(tmp_path: Path) -> None:
    # Build from a copy, so the source tree gets no build/ or egg-info litter.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path / "dist"
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("-q", "-w", str(out), str(source)),
        ],
        check=True,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    (wheel,) = out.glob("durable_temporal_workers-0.1.0-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = "durable_temporal_workers-0.1.0.dist-info"
        entry_points = archive.read(f"{meta}/entry_points.txt").decode()
        metadata = archive.read(f"{meta}/METADATA").decode()
    assert "durable_temporal_workers/py.typed" in names
    assert "durable_temporal_workers/workflows/orders.py" in names
    assert "temporal-workers = durable_temporal_workers.cli:run" in entry_points
    assert "Name: durable-temporal-workers" in metadata
    # Ranged runtime dependencies (the exact tested set is constraints.txt), and plain ones:
    # every host may use the shared PostgreSQL store.
    requires = {
        req.name: req
        for req in (
            Requirement(line.removeprefix("Requires-Dist: "))
            for line in metadata.splitlines()
            if line.startswith("Requires-Dist: ") and "extra ==" not in line
        )
    }
    assert set(requires) == {"temporalio", "PyYAML", "psycopg", "psycopg-pool"}
    assert requires["psycopg"].extras == {"binary"}
    pinned = dict(
        line.split("==", 1)
        for line in (Path(__file__).parents[1] / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for name, req in requires.items():
        assert req.specifier.contains(pinned[name]), (name, req.specifier, pinned[name])
    # The HTTP API's only with its extra: a worker host does not install them.
    assert 'Requires-Dist: fastapi<1,>=0.163; extra == "api"' in metadata
    assert "durable_temporal_workers/store_postgres.py" in names
