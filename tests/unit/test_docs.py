"""The README stays a short front door, the documentation's links lead somewhere, and the repository speaks of the product only."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The README is read first and on the collection's Galaxy page: keep it short, the details live in docs/.
README_LIMIT = 12_000
PAGES = sorted([REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "bench" / "README.md", *(REPO / "docs").rglob("*.md")])
LINK = re.compile(r"\]\(([^)#\s]+)?(#[^)\s]*)?\)")
PROCESS_WORDS = re.compile(r"\bissues? #?[0-9]+\b|design[ ]card", re.IGNORECASE)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def test_the_readme_is_short_and_names_the_test_command() -> None:
    text = (REPO / "README.md").read_text()
    assert len(text.encode()) <= README_LIMIT, f"README.md is {len(text.encode())} bytes; move details to docs/"
    assert "make test" in text and "make demo" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    broken = []
    for match in LINK.finditer(page.read_text()):
        target, anchor = match.group(1) or "", match.group(2)
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor[1:] not in anchors(path):
            broken.append(target + anchor)
    assert not broken, f"{page.relative_to(REPO)}: broken links {broken}"


def test_every_role_has_a_page() -> None:
    # Roles named with a leading underscore are internal: no user includes them.
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists() and not p.name.startswith("_"))
    missing = [role for role in roles if not (REPO / "docs" / "roles" / f"{role}.md").exists()]
    assert not missing, f"roles without a page in docs/roles/: {missing}"


def test_no_tracked_file_but_the_changelog_names_issues_or_design_cards() -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    found = []
    for name in files:
        path = REPO / name
        if not name or name == "CHANGELOG.md" or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{name}: {m.group(0)}" for m in PROCESS_WORDS.finditer(text)]
    assert not found, found
