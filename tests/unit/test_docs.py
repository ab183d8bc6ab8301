"""The documentation holds together: a short README, links that resolve, no orphan page."""

from __future__ import annotations

import re

from tests.helpers import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
PAGES.append(ROOT / "deploy" / "README.md")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")


def test_readme_is_the_front_page_not_the_manual() -> None:
    assert len((ROOT / "README.md").read_bytes()) <= 16 * 1024
    for command in ("make run", "make test"):
        assert command in (ROOT / "README.md").read_text()


def test_every_relative_link_resolves() -> None:
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: {target}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in (ROOT / "docs").iterdir():
        assert f"docs/{page.name}" in readme, page.name
