"""Failures say where they come from; reports and the CLI show every rule; coverage is built in."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import pytest
from chatkit.store import NotFoundError
from chatkit.types import ThreadItem
from chatkit.widgets import BasicRoot, Card, DynamicWidgetRoot, ListView

from chatkit_kit.cli import main
from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import RULES, run_conformance

from .broken_stores import (
    DropsTimeZone,
    FlattensTemplateWidgets,
    GlobalItemIds,
    StaleReadsAcrossRequests,
)
from .variant_stores import SimpleStore


def test_store_exception_names_the_call_and_the_rule() -> None:
    class CursorExplodes(MemoryStore[Any]):
        async def load_thread_items(self, thread_id: str, after: Any, *args: Any) -> Any:
            if after and after.startswith("h2_"):
                raise KeyError("connection reset")
            return await super().load_thread_items(thread_id, after, *args)

    report = run_conformance(CursorExplodes, rules={"hidden-item-cursor"})
    assert re.fullmatch(
        r"\[hidden-item-cursor\] the store raised KeyError: 'connection reset' in "
        r"`load_thread_items\('thr_(\w{8})', 'h2_\1', 5, 'desc', ctx\)` while checking "
        r"hidden-item-cursor",
        report.failed["hidden-item-cursor"],
    ), report.failed["hidden-item-cursor"]


def test_a_broken_basic_fact_says_what_the_probe_saw_and_what_a_user_sees() -> None:
    message = run_conformance(GlobalItemIds, rules={"same-id-two-rows"}).failed["same-id-two-rows"]
    assert message.startswith(
        "[same-id-two-rows] probe (item keys are scoped by thread and owner) fails: the "
        "store raised IntegrityError: UNIQUE constraint failed: items.id in `add_thread_item("
    ), message
    assert "In ChatKit: a message changes or vanishes" in message and len(message) <= 400


def test_store_exception_inside_examples_is_attributed() -> None:
    class Explodes(MemoryStore[Any]):
        async def load_thread(self, thread_id: str, context: Any) -> Any:
            if thread_id.startswith("thr_probe"):  # the probe's basic facts hold
                return await super().load_thread(thread_id, context)
            raise KeyError("connection reset")

    message = run_conformance(Explodes, rules={"thread-round-trip"}).failed["thread-round-trip"]
    assert "the store raised KeyError: 'connection reset' in `load_thread(" in message
    assert message.endswith("while checking thread-round-trip")


def test_state_leaking_between_examples_is_reported_as_such() -> None:
    message = run_conformance(StaleReadsAcrossRequests, rules={"thread-round-trip"}).failed[
        "thread-round-trip"
    ]
    assert "state leaks between examples" in message
    assert "last store call `load_thread(" in message
    assert "Flaky" not in message


def test_report_table_and_json_list_every_rule() -> None:
    rules = {"thread-upsert", "same-id-two-rows"}
    report = run_conformance(GlobalItemIds, rules=rules)
    lines = str(report).splitlines()
    assert lines[0].split() == ["rule", "tier", "result"]
    assert any(line.startswith("thread-upsert") and " passed" in line for line in lines)
    assert any(line.startswith("same-id-two-rows") and "FAILED [same-id" in line for line in lines)
    assert lines[-1] == "1 passed, 1 failed, 0 not supported"
    data = json.loads(report.to_json())
    assert data["ok"] is False
    assert {r["name"]: r["outcome"] for r in data["rules"]} == {
        "thread-upsert": "passed",
        "same-id-two-rows": "failed",
    }


def test_unknown_rule_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown conformance rules: \\['no-such-rule'\\]"):
        run_conformance(MemoryStore, rules={"no-such-rule"})
    with pytest.raises(ValueError, match="not part of this run: pass strict=True"):
        run_conformance(MemoryStore, rules={"unstorable-ids"})


def test_every_ci_run_round_trips_every_item_type_and_widget_root() -> None:
    """Coverage by construction: the ci profile's item-round-trip writes every kind."""
    seen: set[type[Any]] = set()

    class Recording(MemoryStore[Any]):
        async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Any) -> None:
            seen.add(type(item))
            widget = getattr(item, "widget", None)
            if widget is not None:
                seen.add(type(widget))
            await super().add_thread_item(thread_id, item, context)

    assert run_conformance(Recording, rules={"item-round-trip"}).ok
    item_types = set(typing.get_args(typing.get_args(ThreadItem)[0]))
    assert len(item_types) == 11
    assert item_types <= seen
    assert {Card, ListView, BasicRoot, DynamicWidgetRoot} <= seen


def test_rules_have_a_tier_and_say_what_they_protect() -> None:
    for rule in RULES.values():
        assert rule.tier in ("contract", "strict", "attachment-index")
        assert rule.protects and rule.description
        if rule.tier == "strict":
            assert rule.protects.startswith("policy:")


# The CLI


def test_cli_prints_the_table_and_exits_1_on_failures(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "conformance",
            "tests.testing.broken_stores:GlobalItemIds",
            "--rule",
            "same-id-two-rows",
            "--rule",
            "thread-upsert",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "same-id-two-rows" in out and "FAILED" in out and "1 passed, 1 failed" in out


def test_cli_json_and_strict_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "conformance",
            "chatkit_kit.stores:MemoryStore",
            "--strict",
            "--json",
            "--rule",
            "unstorable-ids",
            "--rule",
            "thread-upsert",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["ok"] is True
    assert [(r["name"], r["tier"]) for r in data["rules"]] == [
        ("thread-upsert", "contract"),
        ("unstorable-ids", "strict"),
    ]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["no_colon"], "FACTORY must look like MODULE:NAME"),
        (["no_such_module_xyz:f"], "cannot import 'no_such_module_xyz'"),
        (["chatkit_kit.stores:Nope"], "has no attribute 'Nope'"),
        (["chatkit_kit:__version__"], "is a str, not a callable"),
        (["chatkit_kit.stores:MemoryStore", "--rule", "bogus"], "unknown conformance rules"),
    ],
)
def test_cli_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["conformance", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chatkit-kit conformance: ") and message in err


# A user's project


_USER_TEST = '''
from chatkit.types import ThreadMetadata  # chatkit first, as isort orders it

from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import StoreConformance


class QuickstartLikeStore(MemoryStore):
    """No attachments, like upstream's quickstart store."""

    async def save_attachment(self, attachment, context):
        raise NotImplementedError

    async def load_attachment(self, attachment_id, context):
        raise NotImplementedError

    async def delete_attachment(self, attachment_id, context):
        raise NotImplementedError


class TestQuickstartLikeStore(StoreConformance):
    def make_store(self):
        return QuickstartLikeStore()
'''


def test_users_project_with_filterwarnings_error(tmp_path: Path) -> None:
    """Collection and the rules (widgets included) work under `filterwarnings = error`; the
    attachment rules of a store without attachments are reported as skips with the reason."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    (tmp_path / "test_user_store.py").write_text(textwrap.dedent(_USER_TEST))
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:asyncio",
            "-q",
            "-rs",
            "-k",
            "thread_upsert or item_round_trip or attachment",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "2 passed, 2 skipped" in out, out
    assert out.count("not supported by this store: the store raises NotImplementedError") == 2


def test_docs_list_every_rule() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    missing = [name for name in RULES if f"| `{name}` |" not in page]
    assert missing == []


# Messages: the operation, its arguments, the field, both values; no bare suite errors


def test_lost_widget_properties_are_named() -> None:
    message = run_conformance(FlattensTemplateWidgets, rules={"item-round-trip"}).failed[
        "item-round-trip"
    ]
    assert (
        "load_item(" in message and "came back as a Card, expected a DynamicWidgetRoot" in message
    )
    assert "lost properties" in message and len(message) <= 400


def test_datetimes_exact_says_item_or_thread() -> None:
    message = run_conformance(DropsTimeZone, rules={"datetimes-exact"}).failed["datetimes-exact"]
    assert "load_item(" in message and "item created_at expected datetime.datetime(" in message


def test_a_store_losing_metadata_fails_returned_copies_without_a_key_error() -> None:
    class LosesMetadata(MemoryStore[Any]):
        async def load_thread(self, thread_id: str, context: Any) -> Any:
            thread = await super().load_thread(thread_id, context)
            if not thread_id.startswith("thr_probe"):
                thread.metadata = {}
            return thread

    message = run_conformance(LosesMetadata, rules={"returned-copies"}).failed["returned-copies"]
    assert re.match(r"\[returned-copies\] load_thread\('thr_\w{8}'\) after ", message), message
    assert "KeyError" not in message and ".metadata" in message


def test_an_empty_first_page_fails_timestamps_strictly_ordered_without_an_index_error() -> None:
    class EmptyDesc(MemoryStore[Any]):
        async def load_thread_items(
            self, thread_id: str, after: Any, limit: int, order: str, context: Any
        ) -> Any:
            page = await super().load_thread_items(thread_id, after, limit, order, context)
            if not thread_id.startswith("thr_probe") and order == "desc":
                page.data, page.has_more, page.after = [], False, None
            return page

    message = run_conformance(EmptyDesc, rules={"timestamps-strictly-ordered"}).failed[
        "timestamps-strictly-ordered"
    ]
    assert "IndexError" not in message
    assert re.search(
        r"load_thread_items\('thr_\w{8}', None, 20, 'desc'\) of 25 items gave 0 rows", message
    ), message


def test_strict_messages_name_the_store_method_and_no_none_message() -> None:
    report = run_conformance(SimpleStore, strict=True, rules={"item-write-needs-thread"})
    message = report.failed["item-write-needs-thread"]
    assert "add_thread_item into a thread never saved" in message and "call_async" not in message

    class NoThreadMessage(MemoryStore[Any]):
        async def load_thread(self, thread_id: str, context: Any) -> Any:
            if thread_id == "thr_missing":
                raise NotFoundError("missing")
            return await super().load_thread(thread_id, context)

    report = run_conformance(NoThreadMessage, strict=True, rules={"thread-not-found-message"})
    message = report.failed["thread-not-found-message"]
    assert "raised NotFoundError('missing')" in message and "None" not in message


def test_a_huge_title_is_cut_short() -> None:
    """A 5,000-character title in a failure leaves the message within 400 characters."""

    class PadsTitles(MemoryStore[Any]):
        # Every title but the probe phase's owner-isolation ones (kept so the probe passes and
        # the rule itself runs) comes back 5,000 characters longer.
        async def load_thread(self, thread_id: str, context: Any) -> Any:
            thread = await super().load_thread(thread_id, context)
            if thread.title and thread.title not in ("alice's", "bob's"):
                thread.title += "y" * 5000
            return thread

    report = run_conformance(PadsTitles, rules={"thread-round-trip"})
    assert report.failed_rules == {"thread-round-trip"}, str(report)
    message = report.failed["thread-round-trip"]
    assert ".title expected '" in message and "chars)" in message, message
    assert len(message) <= 400


def test_pytest_test_names_are_the_rule_names() -> None:
    from chatkit_kit.testing import StrictStoreConformance

    names = {name for name in dir(StrictStoreConformance) if name.startswith("test_")}
    expected = {
        "test_" + name.replace("-", "_")
        for name, rule in RULES.items()
        if rule.tier in ("contract", "strict")
    }
    assert names == expected


def test_cli_writes_nothing_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["conformance", "chatkit_kit.stores:MemoryStore", "--rule", "stateful-model"])
    assert code == 0, capsys.readouterr().out
    argv = ["conformance", "chatkit_kit.stores:MemoryStore", "--rule", "thread-round-trip"]
    assert main([*argv, "--profile", "deep"]) == 0  # the deep profile keeps a database
    assert list(tmp_path.iterdir()) == []


def test_cli_declares_a_projection_store(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["conformance", "tests.testing.variant_stores:ProjectionStore", "--rule"]
    assert main([*argv, "item-round-trip", "--items-written-elsewhere"]) == 0
    assert "not supported declared: items_written_elsewhere" in capsys.readouterr().out
    assert main([*argv, "item-round-trip"]) == 1  # undeclared: its lost writes fail the run
    assert "not checked: blocked by same-id-two-rows" in capsys.readouterr().out
