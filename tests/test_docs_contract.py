"""docs/contract.md: every rule links a real conformance rule, every citation a real section."""

from __future__ import annotations

import re
from pathlib import Path

from chatkit_kit.testing import RULES

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "docs" / "contract.md"
_ANCHOR = re.compile(r"^#{1,6} .*\{#([a-z0-9-]+)\}\s*$", re.MULTILINE)
_RULE_LINK = re.compile(r"\[`([a-z0-9-]+)`\]\(testing\.md#[a-z0-9-]+\)")
_CITATION = re.compile(r"contract\.md#([A-Za-z0-9_-]+)")


def anchors() -> set[str]:
    return set(_ANCHOR.findall(CONTRACT.read_text(encoding="utf-8")))


def test_every_heading_has_a_stable_anchor() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if re.match(r"^#{2,6} ", line)]
    assert headings
    assert all(_ANCHOR.match(line) for line in headings), [
        line for line in headings if not _ANCHOR.match(line)
    ]
    assert len(anchors()) == len(headings), "two headings share an anchor"


def test_checked_by_names_conformance_rules_and_every_rule_is_cited() -> None:
    cited = set(_RULE_LINK.findall(CONTRACT.read_text(encoding="utf-8")))
    assert cited - set(RULES) == set(), "contract.md names rules the suite does not have"
    assert set(RULES) - cited == set(), "conformance rules contract.md does not link"


def test_citations_in_the_project_point_at_existing_sections() -> None:
    """Docstrings, docs and comments cite `contract.md#anchor`; each anchor must exist."""
    known = anchors()
    files = [
        *ROOT.joinpath("src").rglob("*.py"),
        *ROOT.joinpath("docs").rglob("*.md"),
        *ROOT.joinpath("tests").rglob("*.py"),
        ROOT / "pyproject.toml",
        ROOT / "README.md",
    ]
    broken = {
        f"{path.relative_to(ROOT)}: #{anchor}"
        for path in files
        if path != Path(__file__).resolve()
        for anchor in _CITATION.findall(path.read_text(encoding="utf-8"))
        if anchor not in known
    }
    assert not broken, sorted(broken)
