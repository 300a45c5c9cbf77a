"""The server role refuses a release older than the schema in the database: the preflight's own check, run
against the schema versions a database could report, for releases in the schema table, older than every row
of it, and newer than every row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from render import BOX_INVENTORY, ROOT, role_vars_play, run_playbook

CHECK = "Check that the server version is not older than the schema in the database"
FILES = ("server/defaults/main.yml", "server/vars/main.yml")
TABLE = yaml.safe_load((ROOT / "roles/server/vars/main.yml").read_text())["_temporal_server_schema_versions"]


def schema_check_task() -> dict:
    tasks = yaml.safe_load((ROOT / "roles/server/tasks/preflight.yml").read_text())
    (task,) = [task for task in tasks if task.get("name") == CHECK]
    return task


def reported(temporal: str | None, visibility: str | None) -> dict:
    """What the read of both databases registers; None for a database without a schema_version table."""
    results = []
    for database, kind, version in (
        ("temporal", "temporal", temporal),
        ("temporal_visibility", "visibility", visibility),
    ):
        row = {"item": {"database": database, "schema": f"postgresql/v12/{kind}"}}
        row |= {"query_result": [{"curr_version": version}]} if version else {"failed": True, "msg": "no such table"}
        results.append(row)
    return {"results": results}


def run_check(tmp_path: Path, version: str, temporal: str | None, visibility: str | None):
    play = (
        role_vars_play("box", *FILES)
        + "  tasks:\n"
        + "\n".join("    " + line for line in yaml.safe_dump([schema_check_task()], sort_keys=False).splitlines())
    )
    extra = {
        "temporal_server_version": version,
        "temporal_server_db_host": "db.example",
        "_temporal_server_db_schema_versions": reported(temporal, visibility),
    }
    return run_playbook(tmp_path, BOX_INVENTORY, play + "\n", "-e", json.dumps(extra))


def test_the_table_moves_forward_with_each_minor() -> None:
    minors = sorted(TABLE, key=lambda minor: tuple(int(part) for part in minor.split(".")))
    for kind in ("temporal", "visibility"):
        versions = [tuple(int(part) for part in TABLE[minor][kind].split(".")) for minor in minors]
        assert versions == sorted(versions), (kind, minors, versions)


def test_the_pinned_release_has_a_row() -> None:
    pinned = yaml.safe_load((ROOT / "roles/server/defaults/main.yml").read_text())["temporal_server_version"]
    assert pinned.rsplit(".", 1)[0] in TABLE


@pytest.mark.parametrize(
    ("version", "temporal", "visibility"),
    [
        ("1.32.0", "1.19", "1.14"),  # the release that set the schema up
        ("1.32.3", None, None),  # a database not yet set up
        ("1.33.0", "1.19", "1.14"),  # a release newer than the table: an upgrade
        ("1.31.4", "1.18", "1.13"),  # an upgrade from 1.30
        ("1.31.4", "1.19", "1.14"),  # a release of the same schema
    ],
)
def test_a_release_at_or_ahead_of_the_schema_passes(tmp_path: Path, version: str, temporal, visibility) -> None:
    result = run_check(tmp_path, version, temporal, visibility)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("version", "temporal", "visibility", "behind"),
    [
        ("1.30.9", "1.19", "1.14", ["temporal", "temporal_visibility"]),
        ("1.30.9", "1.19", "1.13", ["temporal"]),
        ("1.28.0", "1.19", None, ["temporal"]),  # older than every row of the table
    ],
)
def test_a_release_older_than_the_schema_is_refused_with_the_reason(
    tmp_path: Path, version, temporal, visibility, behind
) -> None:
    result = run_check(tmp_path, version, temporal, visibility)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert (
        f"Invalid server variable temporal_server_version: {version} is older than the schema in the database" in output
    )
    for database in ("temporal", "temporal_visibility"):
        assert (f"{database} on db.example is at schema" in output) == (database in behind), output
    assert "only moves forward" in output
