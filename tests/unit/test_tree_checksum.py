"""tree_checksum decides when the controller builds the workers' wheel again: it must move with the sources only."""

from __future__ import annotations

import sys
from pathlib import Path

from render import ROOT

sys.path.insert(0, str(ROOT / "plugins" / "lookup"))
from tree_checksum import tree_checksum  # noqa: E402

EXCLUDE = ["__pycache__", "*.pyc", "build", "*.egg-info"]


def make_tree(root: Path) -> Path:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'pkg'\n")
    (root / "src" / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    return root


def test_the_same_tree_gives_the_same_checksum_and_caches_do_not_count(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "a")
    before = tree_checksum(str(tree), EXCLUDE)
    (tree / "src" / "pkg" / "__pycache__").mkdir()
    (tree / "src" / "pkg" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (tree / "build").mkdir()
    (tree / "build" / "junk").write_text("x")
    assert tree_checksum(str(tree), EXCLUDE) == before
    assert tree_checksum(str(make_tree(tmp_path / "b")), EXCLUDE) == before


def test_an_edit_an_added_file_and_a_rename_each_change_it(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "a")
    seen = {tree_checksum(str(tree), EXCLUDE)}
    (tree / "src" / "pkg" / "__init__.py").write_text("VALUE = 2\n")
    seen.add(tree_checksum(str(tree), EXCLUDE))
    (tree / "src" / "pkg" / "extra.py").write_text("")
    seen.add(tree_checksum(str(tree), EXCLUDE))
    (tree / "src" / "pkg" / "extra.py").rename(tree / "src" / "pkg" / "other.py")
    seen.add(tree_checksum(str(tree), EXCLUDE))
    assert len(seen) == 4


def test_a_missing_path_gives_an_empty_string(tmp_path: Path) -> None:
    assert tree_checksum(str(tmp_path / "nothing"), EXCLUDE) == ""
