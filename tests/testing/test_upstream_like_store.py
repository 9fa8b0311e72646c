"""What the contract tier reports on a store like upstream's own test `SQLiteStore`.

Seven distinct causes, each failing once under its own rule; every rule relying on a broken
fact is not checked, naming it. The verdict is the same whether every rule gets a new database
file or one database serves them all (docs/testing.md quotes it).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from chatkit_kit.testing import run_conformance

from .upstream_like_store import UpstreamLikeSQLiteStore

CAUSES = {
    # threads.id is the primary key: another owner's thread id is an integrity error.
    "owner-isolation": "IntegrityError: UNIQUE constraint failed: threads.id",
    # items.id is the primary key: an item id reused by another thread is one too.
    "same-id-two-rows": "IntegrityError: UNIQUE constraint failed: items.id",
    # add_thread_item is a plain INSERT.
    "add-item-idempotent": "IntegrityError: UNIQUE constraint failed: items.id",
    # save_item is a bare UPDATE: a new item is never stored.
    "save-item-upsert": "after save_item(",
    # The keyset compares created_at alone: rows tied with the cursor are skipped.
    "ties-stable-order": "missing [",
    # Synchronous sqlite3 on the event loop.
    "does-not-block-loop": "did blocking I/O without yielding to the event loop",
    # load_attachment reads by id alone.
    "attachment-owner-isolation": "of another owner loaded the attachment",
}
"""Each distinct cause: the rule it fails, and a part of the message saying why."""

NOT_CHECKED = {
    "thread-round-trip": "owner-isolation",
    "thread-upsert": "owner-isolation",
    "threads-pagination": "owner-isolation",
    "item-round-trip": "owner-isolation",
    "has-more-needs-cursor": "owner-isolation",
    "unknown-cursor": "owner-isolation",
    "unknown-thread-empty-page": "owner-isolation",
    "unknown-thread-creates-nothing": "owner-isolation",
    "delete-thread-item": "same-id-two-rows",
    "upsert-never-moves": "owner-isolation",
    "stateful-model": "owner-isolation",
}
"""Rules not checked, and the broken fact each is blocked by (the first it relies on)."""


@pytest.mark.parametrize("shared", [False, True], ids=["store-per-rule", "one-store"])
def test_upstream_like_store_fails_each_cause_once(tmp_path: Path, shared: bool) -> None:
    paths = (tmp_path / f"store{n}.db" for n in itertools.count())
    one = UpstreamLikeSQLiteStore(tmp_path / "one.db")
    report = run_conformance(
        (lambda: one) if shared else (lambda: UpstreamLikeSQLiteStore(next(paths)))
    )
    assert report.failed_rules == set(CAUSES), str(report)
    for rule, why in CAUSES.items():
        message = report.failed[rule]
        assert message.startswith(f"[{rule}] ") and why in message, message
        assert len(message) <= 400, message
    assert report.not_checked == {
        rule: f"not checked: blocked by {blocker}" for rule, blocker in NOT_CHECKED.items()
    }, str(report)
    # Everything else holds: cursors are exclusive, unknown item cursors raise, a saved Thread
    # keeps only its metadata, hostile ids are data, the JSON comes back.
    assert {
        "exclusive-cursor",
        "hidden-item-cursor",
        "thread-metadata-only",
        "hostile-ids-are-data",
        "json-exact",
        "datetimes-exact",
        "attachment-round-trip",
    } <= set(report.passed), str(report)
    assert set(report.not_supported) == {"reopen-reads-back", "close-releases-connections"}
    assert not report.ok
