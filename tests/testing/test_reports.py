"""Failures say where they come from; reports and the CLI show every rule; coverage is built in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any

import pytest
from chatkit.types import ThreadItem
from chatkit.widgets import BasicRoot, Card, DynamicWidgetRoot, ListView

from chatkit_kit.cli import main
from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import RULES, run_conformance

from .broken_stores import GlobalItemIds, StaleReadsAcrossRequests


def test_store_exception_names_the_call_and_the_rule() -> None:
    report = run_conformance(GlobalItemIds, rules={"same-id-two-rows"})
    assert report.failed["same-id-two-rows"].endswith(
        ": the store raised IntegrityError: UNIQUE constraint failed: items.id in "
        "`add_thread_item('thr_2', AssistantMessageItem(id='__fake_id__'), ctx)` "
        "while checking same-id-two-rows"
    )


def test_store_exception_inside_examples_is_attributed() -> None:
    class Explodes(MemoryStore[Any]):
        async def load_thread(self, thread_id: str, context: Any) -> Any:
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
