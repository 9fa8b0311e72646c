"""The conformance suite fails on every deliberately broken store, naming the broken rule."""

from __future__ import annotations

from typing import Any

import pytest

from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import RULES, run_conformance

from .broken_stores import BROKEN_STORES


@pytest.mark.parametrize(
    ("store_class", "rule"), list(BROKEN_STORES.items()), ids=[c.__name__ for c in BROKEN_STORES]
)
def test_suite_catches_broken_store(store_class: type[MemoryStore[Any]], rule: str) -> None:
    report = run_conformance(store_class)
    assert not report.ok, f"the suite passed {store_class.__name__}:\n{report}"
    assert rule in report.failed_rules, f"{rule} not among failures:\n{report}"
    assert report.failed[rule].startswith(f"[{rule}] {RULES[rule]}")


def test_memory_store_report_is_all_green() -> None:
    report = run_conformance(MemoryStore)
    assert report.ok, str(report)
    assert set(report.passed) == set(RULES)


def test_stateful_test_alone_catches_most_bugs() -> None:
    """The random-sequence test finds bugs without a named example pointing at them."""
    from . import broken_stores as b

    stores = [
        b.IgnoresOwner,
        b.OffByOnePage,
        b.DescIgnoresCursor,
        b.TiesSkippedAtBoundary,
        b.SaveItemOnlyUpdates,
        b.DeleteThreadLeavesItems,
        b.UnknownCursorRestarts,
        b.AttachmentsNotScoped,
    ]
    caught = [s.__name__ for s in stores if not run_conformance(s, rules={"stateful-model"}).ok]
    assert len(caught) >= 6, f"the stateful test alone caught only {caught}"
