"""Running the suite outside pytest, and the report it returns (a table or JSON)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from chatkit.store import Store

from ._harness import RULES, ConformanceFailure, NotChecked, NotSupported, Rule
from ._suites import StoreConformance, StrictStoreConformance, suite_rules

Outcome = Literal["passed", "failed", "not supported", "not checked"]


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule."""

    rule: Rule
    outcome: Outcome
    message: str = ""


@dataclass
class ConformanceReport:
    """What passed, failed, was not supported, or was not checked (blocked by a broken basic
    fact another rule reports) when a store ran through the suite."""

    results: list[RuleResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No rule failed and none was left unchecked (unsupported rules do not count)."""
        return not self.failed and not self.not_checked

    @property
    def passed(self) -> list[str]:
        return [r.rule.name for r in self.results if r.outcome == "passed"]

    @property
    def failed(self) -> dict[str, str]:
        """Failure message by rule name."""
        return {r.rule.name: r.message for r in self.results if r.outcome == "failed"}

    @property
    def not_supported(self) -> dict[str, str]:
        """Reason by rule name, for rules needing a capability the store lacks."""
        return {r.rule.name: r.message for r in self.results if r.outcome == "not supported"}

    @property
    def not_checked(self) -> dict[str, str]:
        """`not checked: blocked by <rule>` by rule name: a basic fact the rule relies on is
        broken, and that rule's failure says which."""
        return {r.rule.name: r.message for r in self.results if r.outcome == "not checked"}

    @property
    def failed_rules(self) -> set[str]:
        return set(self.failed)

    def __str__(self) -> str:
        width = max([len(r.rule.name) for r in self.results] + [4]) + 2
        lines = [f"{'rule':{width}}{'tier':10}result"]
        for r in self.results:
            first = r.message.splitlines()[0] if r.message else ""
            shown = {
                "passed": "passed",
                "failed": "FAILED",
                "not supported": "not supported",
                "not checked": "not checked",
            }
            status = f"{shown[r.outcome]} {first}" if r.outcome != "passed" else "passed"
            if r.outcome == "not checked":
                status = first  # "not checked: blocked by <rule>"
            lines.append(f"{r.rule.name:{width}}{r.rule.tier:10}{status}")
        counts = {o: sum(r.outcome == o for r in self.results) for o in shown}
        summary = (
            f"{counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['not supported']} not supported"
        )
        if counts["not checked"]:
            summary += f", {counts['not checked']} not checked"
        lines.append(summary)
        return "\n".join(lines)

    def to_json(self) -> str:
        """The report as JSON: `ok` and one entry per rule (name, tier, outcome, message)."""
        return json.dumps(
            {
                "ok": self.ok,
                "rules": [
                    {
                        "name": r.rule.name,
                        "tier": r.rule.tier,
                        "outcome": r.outcome,
                        "message": r.message,
                    }
                    for r in self.results
                ],
            },
            indent=2,
        )


def run_conformance(
    make_store: Callable[[], Store[Any] | Awaitable[Store[Any]]],
    *,
    make_context: Callable[[str], Any] | None = None,
    teardown_store: Callable[[Any], Awaitable[None] | None] | None = None,
    profile: str = "ci",
    rules: set[str] | None = None,
    strict: bool = False,
    supports_attachments: bool | None = None,
    items_written_elsewhere: bool = False,
    reopen: Callable[[Any], Store[Any] | Awaitable[Store[Any]]] | None = None,
) -> ConformanceReport:
    """Run the suite (the contract tier; with `strict=True` the strict tier too) outside pytest.

    `rules` limits the run to those rule names. Every rule builds its own store with
    `make_store`. `reopen(store)` (optional) returns a new store on the same location as
    `store`, for the reopen rules; `items_written_elsewhere` declares a projection store.
    The report lists every rule run as passed, failed (with the message), not supported
    (with the reason) or not checked (blocked by the rule of a broken basic fact).
    """
    unknown = set(rules or ()) - set(RULES)
    if unknown:
        raise ValueError(f"unknown conformance rules: {sorted(unknown)}")
    base = StrictStoreConformance if strict else StoreConformance

    class Suite(base):  # type: ignore[valid-type,misc]
        conformance_profile = profile

        def make_store(self) -> Store[Any] | Awaitable[Store[Any]]:
            return make_store()

        def teardown_store(self, store: Any) -> Awaitable[None] | None:
            return None if teardown_store is None else teardown_store(store)

        def make_context(self, user_id: str) -> Any:
            if make_context is None:
                return super().make_context(user_id)
            return make_context(user_id)

    Suite.supports_attachments = supports_attachments
    Suite.items_written_elsewhere = items_written_elsewhere
    if reopen is not None:
        hook = reopen

        def reopen_store(self: Any, store: Any) -> Store[Any] | Awaitable[Store[Any]]:
            return hook(store)

        Suite.reopen = reopen_store
    available = {info.name for _, info in suite_rules(Suite)}
    elsewhere = sorted(set(rules or ()) - available)
    if elsewhere:
        tiers = sorted({RULES[name].tier for name in elsewhere})
        hint = "pass strict=True" if tiers == ["strict"] else f"they are in the {tiers} tier"
        raise ValueError(f"rules {elsewhere} are not part of this run: {hint}")
    report = ConformanceReport()
    suite = Suite()
    for method_name, info in suite_rules(Suite):
        if rules is not None and info.name not in rules:
            continue
        try:
            getattr(suite, method_name)()
        except ConformanceFailure as failure:
            report.results.append(RuleResult(info, "failed", str(failure)))
        except NotSupported as skipped:
            report.results.append(RuleResult(info, "not supported", skipped.reason))
        except NotChecked as blocked:
            report.results.append(RuleResult(info, "not checked", blocked.reason))
        else:
            report.results.append(RuleResult(info, "passed"))
    return report
