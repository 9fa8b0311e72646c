"""The reopen step: a persistent store reads back everything after close and reopen, and
closing releases every connection; without the hook both rules are not supported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import run_conformance

from .broken_stores import LeaksConnections
from .sync_sqlite_store import SyncSQLiteStore

REOPEN_RULES = {"reopen-reads-back", "close-releases-connections"}


def test_a_persistent_store_passes_the_reopen_rules(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    report = run_conformance(
        lambda: SyncSQLiteStore(path),
        teardown_store=lambda store: store.close(),
        reopen=lambda store: SyncSQLiteStore(path),
        rules=REOPEN_RULES,
    )
    assert report.ok and set(report.passed) == REOPEN_RULES, str(report)


def test_a_store_that_forgets_on_reopen_fails_reopen_reads_back() -> None:
    report = run_conformance(
        MemoryStore, reopen=lambda store: MemoryStore(), rules={"reopen-reads-back"}
    )
    assert report.failed_rules == {"reopen-reads-back"}, str(report)
    message = report.failed["reopen-reads-back"]
    assert "after reopening, load_thread(" in message and "NotFoundError" in message


def test_unclosed_connections_fail_close_releases_connections(tmp_path: Path) -> None:
    path = str(tmp_path / "leaks.db")

    async def close(store: Any) -> None:
        await store.close()

    made: list[LeaksConnections] = []

    def make() -> LeaksConnections:
        made.append(LeaksConnections(path))
        return made[-1]

    try:
        report = run_conformance(
            make,
            teardown_store=close,
            reopen=lambda store: make(),
            rules={"close-releases-connections"},
        )
    finally:  # what the broken store leaks, closed here (not by the garbage collector later)
        for store in made:
            for connection in store.connections:
                connection.close()
    assert report.failed_rules == {"close-releases-connections"}, str(report)
    assert "more file descriptor(s) are open" in report.failed["close-releases-connections"]


def test_without_the_hook_the_reopen_rules_are_not_supported() -> None:
    report = run_conformance(MemoryStore, rules=REOPEN_RULES)
    assert set(report.not_supported) == REOPEN_RULES
    assert all("no reopen(store) hook" in why for why in report.not_supported.values())
