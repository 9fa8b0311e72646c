"""The contract tier is fair: every correct store passes it, whatever legitimate choice it makes.

The strict tier is what tells those choices apart from chatkit-kit's own policies.
"""

from __future__ import annotations

import pytest
from chatkit.types import Attachment

from chatkit_kit.testing import RULES, run_conformance

from .variant_stores import (
    VARIANT_STORES,
    EmptyPageForUnknownCursorStore,
    ForeignKeyStore,
    InsertionOrderStore,
    JsonbNumbersStore,
    LenientOrderStore,
    NoAttachmentsStore,
    ProjectionStore,
    ResortOnUpsertStore,
    SimpleStore,
    ThreadRequiredStore,
)

CONTRACT = [name for name, rule in RULES.items() if rule.tier == "contract"]
ATTACHMENT_RULES = {name for name in CONTRACT if "attachments" in RULES[name].needs}
REOPEN_RULES = {name for name in CONTRACT if "reopen" in RULES[name].needs}


@pytest.mark.parametrize("store_class", list(VARIANT_STORES), ids=lambda c: c.__name__)
def test_variant_store_passes_the_contract_tier(store_class: type[SimpleStore]) -> None:
    options = getattr(store_class, "conformance_options", {})
    report = run_conformance(store_class, **options)
    assert report.ok, f"{VARIANT_STORES[store_class]}:\n{report}"
    supported = [name for name in CONTRACT if name not in report.not_supported]
    assert report.passed == supported


def test_projection_store_runs_the_rules_that_write_no_items() -> None:
    """Declared items_written_elsewhere: item-writing rules are not supported (with the
    declaration as the reason); the thread, read and isolation rules still run and pass."""
    report = run_conformance(ProjectionStore, items_written_elsewhere=True)
    assert report.ok, str(report)
    writing = {name for name in CONTRACT if "item-writes" in RULES[name].needs}
    assert set(report.not_supported) == writing | REOPEN_RULES
    assert {"thread-round-trip", "stateful-model", "unknown-thread-creates-nothing"} <= set(
        report.passed
    )
    assert all("items_written_elsewhere" in report.not_supported[name] for name in writing)
    undeclared = run_conformance(ProjectionStore, rules={"item-round-trip", "same-id-two-rows"})
    assert not undeclared.ok, "a store losing writes must fail"
    assert "the item was not stored" in undeclared.failed["same-id-two-rows"]
    assert undeclared.not_checked == {"item-round-trip": "not checked: blocked by same-id-two-rows"}


def test_store_without_attachments_reports_them_not_supported() -> None:
    report = run_conformance(NoAttachmentsStore, rules=ATTACHMENT_RULES | {"thread-upsert"})
    assert "reopen-reads-back" not in ATTACHMENT_RULES
    assert (
        set(report.not_supported)
        == ATTACHMENT_RULES
        == {
            "attachment-round-trip",
            "attachment-owner-isolation",
        }
    )
    assert all("NotImplementedError" in reason for reason in report.not_supported.values())
    assert "attachment-round-trip" in str(report) and "not supported" in str(report)


def test_declared_without_attachments_runs_no_attachment_call() -> None:
    """Declared unsupported: no rule touches attachments (they would raise AssertionError)."""

    class Refuses(SimpleStore):
        async def save_attachment(self, attachment: Attachment, context: object) -> None:
            raise AssertionError("save_attachment called")

        async def load_attachment(self, attachment_id: str, context: object) -> Attachment:
            raise AssertionError("load_attachment called")

        async def delete_attachment(self, attachment_id: str, context: object) -> None:
            raise AssertionError("delete_attachment called")

    report = run_conformance(Refuses, supports_attachments=False)
    assert report.ok, str(report)
    assert set(report.not_supported) - REOPEN_RULES == ATTACHMENT_RULES
    assert all(report.not_supported[name].startswith("declared") for name in ATTACHMENT_RULES)


@pytest.mark.parametrize(
    ("store_class", "policy"),
    [
        (SimpleStore, "unstorable-ids"),
        (SimpleStore, "item-write-needs-thread"),
        (ForeignKeyStore, "item-write-needs-thread"),
        (ResortOnUpsertStore, "upsert-keeps-position"),
        (LenientOrderStore, "bad-order-and-limit"),
        (EmptyPageForUnknownCursorStore, "unknown-cursor-raises"),
        (InsertionOrderStore, "items-sorted-by-created-at"),
        (JsonbNumbersStore, "json-types-exact"),
    ],
    ids=lambda value: value if isinstance(value, str) else value.__name__,
)
def test_strict_tier_names_the_policy_a_variant_does_not_follow(
    store_class: type[SimpleStore], policy: str
) -> None:
    assert RULES[policy].tier == "strict"
    report = run_conformance(store_class, strict=True, rules={policy})
    assert report.failed_rules == {policy}, str(report)


def test_a_store_refusing_items_of_threads_without_a_row_follows_the_strict_policy() -> None:
    """The variant refusing with NotFoundError passes the strict rule and the strict stateful
    model's writes into never-saved and deleted threads (the rest of the tier is other policies)."""
    rules = {"item-write-needs-thread", "stateful-exact-model"}
    report = run_conformance(ThreadRequiredStore, strict=True, rules=rules)
    assert report.failed_rules == set(), str(report)
    assert set(report.passed) == rules


def test_strict_stateful_model_expects_refused_writes_into_threads_without_a_row() -> None:
    """Keeping items of a never-saved or deleted thread fails the strict stateful test, which
    names the refused write; the contract tier's stateful test accepts it."""
    report = run_conformance(SimpleStore, strict=True, rules={"stateful-exact-model"})
    assert report.failed_rules == {"stateful-exact-model"}, str(report)
    assert "into a thread that has no row" in report.failed["stateful-exact-model"]
    assert run_conformance(SimpleStore, rules={"stateful-model"}).ok
