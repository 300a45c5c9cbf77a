"""Every plugin of the collection has documentation ansible-doc can read (it is the plugins' only manual)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from render import ROOT

PLUGINS = [
    ("module", "durable.temporal.files"),
    ("module", "durable.temporal.host_state"),
    ("module", "durable.temporal.schedule"),
    ("lookup", "durable.temporal.tree_checksum"),
    ("filter", "durable.temporal.systemd_command"),
    ("filter", "durable.temporal.schedule_errors"),
    ("module", "durable.temporal.worker_deployment"),
]


def test_the_list_names_every_module_and_lookup() -> None:
    found = {
        (kind.removesuffix("s"), "durable.temporal." + name.removesuffix(".py"))
        for kind in ("modules", "lookup")
        for name in os.listdir(ROOT / "plugins" / kind)
        if name.endswith(".py")
    }
    assert found == {entry for entry in PLUGINS if entry[0] in ("module", "lookup")}


@pytest.mark.parametrize(("kind", "name"), PLUGINS)
def test_ansible_doc_reads_the_documentation(kind: str, name: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / "collections")
    result = subprocess.run(
        ["ansible-doc", "-t", kind, "--json", name], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)[name]["doc"]
    assert doc["short_description"]
    assert doc.get("description")
