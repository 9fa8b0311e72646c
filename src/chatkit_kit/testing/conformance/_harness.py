"""Running one rule: its event loop and store, the `@rule` decorator, and failure attribution.

A rule is written once, as a decorated scenario method: the decorator registers the rule (name,
description, tier, what upstream behaviour it protects, capabilities it needs) and turns the
scenario into a test method. While the scenario runs, every store call goes through a recorder,
so an exception from the store is reported as "the store raised X in `op(args)` while checking
<rule>", and hypothesis's replay errors become "state leaks between examples".
"""

from __future__ import annotations

import asyncio
import inspect
import os
import unittest
import uuid
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, TypeVar, cast

from chatkit.store import Store
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from pydantic import BaseModel

from ...stores import MAX_ID_BYTES
from .._quiet import quiet_widget_deprecation
from ._capabilities import Capabilities, detect_capabilities

T = TypeVar("T")
Tier = Literal["contract", "strict", "attachment-index"]


@contextmanager
def quiet_suite() -> Iterator[None]:
    """While a rule runs: no upstream widget DeprecationWarning, no hypothesis warning about
    printing a big failing example (the failure message says it all)."""
    with quiet_widget_deprecation(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Generating overly large repr")
        yield


@dataclass(frozen=True)
class Rule:
    """One rule of the suite."""

    name: str
    description: str
    tier: Tier
    protects: str
    """The upstream (ChatKitServer or client) behaviour this rule protects, or the policy."""
    needs: frozenset[str]
    """Capabilities the rule needs (`"attachments"`); without them it is reported not supported."""
    depends: tuple[str, ...] = ()
    """The probe's facts (by rule name) this rule relies on; while one is broken the rule is
    reported not checked."""
    relies_on: tuple[str, ...] = ()
    """Other rules (defined before this one) whose behaviour this rule exercises again; while
    one of them failed in the same run, this rule is reported not checked, naming it."""


ALL_FACTS: tuple[str, ...] = (
    "owner-isolation",
    "same-id-two-rows",
    "add-item-idempotent",
    "unknown-cursor",
    "exclusive-cursor",
    "has-more-needs-cursor",
)
"""The rules the probe phase reports basic facts under (see `_probe`), in probe order."""
_ON_ITS_OWN_DATA = frozenset({"does-not-block-loop"})
"""Rules that build their own fresh data and rely on no probed fact."""
_EXTRA_NEEDS = {"does-not-block-loop": frozenset({"item-writes"})}
"""Capabilities of rules whose decorator is being rewritten elsewhere (kept out of it)."""
MESSAGE_LIMIT = 400
"""A failure message is at most this long."""


RULES: dict[str, Rule] = {}
"""Every rule by name, contract tier first, in the order they run."""


class ConformanceFailure(AssertionError):
    """A store broke a rule; `rule` is its name in RULES."""

    def __init__(self, rule_name: str, detail: str) -> None:
        self.rule = rule_name
        room = MESSAGE_LIMIT - len(rule_name) - 3
        if len(detail) > room:
            detail = detail[: room - 24] + f"... ({len(detail)} chars)"
        self.detail = detail
        super().__init__(f"[{rule_name}] {detail}")


class NotSupported(unittest.SkipTest):
    """The store lacks a capability the rule needs; pytest reports it as a skip."""

    def __init__(self, rule_name: str, reason: str) -> None:
        self.rule = rule_name
        self.reason = reason
        super().__init__(f"[{rule_name}] not supported by this store: {reason}")


class NotChecked(unittest.SkipTest):
    """A basic fact the rule relies on is broken (another rule reports it); pytest shows a
    skip naming that rule, and the run fails through that rule."""

    def __init__(self, rule_name: str, blocker: str) -> None:
        self.rule = rule_name
        self.blocker = blocker
        self.reason = f"not checked: blocked by {blocker}"
        super().__init__(f"[{rule_name}] {self.reason} (that rule's failure says why)")


PROFILES: dict[str, dict[str, Any]] = {
    # Sized so both tiers run in well under a minute per store on 2 cores. Failing examples are
    # reported as found (no shrinking), so a broken store fails fast.
    "ci": {
        "max_examples": 50,
        "stateful_examples": 50,
        "strict_stateful_examples": 20,
        "stateful_steps": 30,
        "derandomize": True,
        "shrink": False,
        "concurrent_adds": 25,
        "loop_thread_items": 1_000,
    },
    # For release runs: CHATKIT_KIT_CONFORMANCE_PROFILE=deep.
    "deep": {
        "max_examples": 400,
        "stateful_examples": 300,
        "strict_stateful_examples": 300,
        "stateful_steps": 80,
        "derandomize": False,
        "shrink": True,
        "concurrent_adds": 100,
        "loop_thread_items": 10_000,
    },
}
PROFILE_ENV = "CHATKIT_KIT_CONFORMANCE_PROFILE"

_STORE_METHODS = frozenset(
    {
        "generate_thread_id",
        "generate_item_id",
        "load_thread",
        "save_thread",
        "load_thread_items",
        "load_threads",
        "add_thread_item",
        "save_item",
        "load_item",
        "delete_thread",
        "delete_thread_item",
        "save_attachment",
        "load_attachment",
        "delete_attachment",
        "list_thread_attachments",
        "list_unattached_attachments",
        "delete_orphan_attachment",
    }
)


def _short(value: Any) -> str:
    row_id = getattr(value, "id", None)
    if isinstance(value, BaseModel) and isinstance(row_id, str):
        return f"{type(value).__name__}(id={_short(row_id)})"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def format_call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """`op(args)` as a failure message shows it; the request context (last argument) is `ctx`."""
    shown = [_short(arg) for arg in args]
    if name not in ("list_unattached_attachments", "delete_orphan_attachment") and shown:
        shown[-1] = "ctx"
    shown += [f"{key}={_short(value)}" for key, value in kwargs.items()]
    return f"{name}({', '.join(shown)})"


class StoreRecorder:
    """Wraps a store; remembers the last call and which call raised which exception."""

    def __init__(self, store: Any) -> None:
        self.wrapped = store
        self.last_call: str | None = None
        self._raised: list[tuple[BaseException, str]] = []

    def call_that_raised(self, exc: BaseException) -> str | None:
        for raised, call in reversed(self._raised):
            if raised is exc:
                return call
        return None

    def _remember(self, exc: BaseException, call: str) -> None:
        self._raised = [*self._raised[-31:], (exc, call)]

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.wrapped, name)
        if name not in _STORE_METHODS or not callable(attr):
            return attr
        if inspect.iscoroutinefunction(attr):

            async def call_async(*args: Any, **kwargs: Any) -> Any:
                shown = format_call(name, args, kwargs)
                self.last_call = shown
                try:
                    return await attr(*args, **kwargs)
                except BaseException as exc:
                    self._remember(exc, shown)
                    raise

            call_async.__name__ = call_async.__qualname__ = name
            return call_async

        def call_sync(*args: Any, **kwargs: Any) -> Any:
            shown = format_call(name, args, kwargs)
            self.last_call = shown
            try:
                return attr(*args, **kwargs)
            except BaseException as exc:
                self._remember(exc, shown)
                raise

        call_sync.__name__ = call_sync.__qualname__ = name
        return call_sync


class Harness:
    """What a scenario works with: the store (recorded), its loop, owners, examples, checks."""

    def __init__(
        self,
        suite: SuiteBase,
        rule_info: Rule,
        loop: asyncio.AbstractEventLoop,
        recorder: StoreRecorder,
        profile: dict[str, Any],
        capabilities: Capabilities,
    ) -> None:
        self.suite = suite
        self.rule = rule_info
        self.loop = loop
        self.recorder = recorder
        self.store = cast(Store[Any], recorder)
        self.profile = profile
        self.capabilities = capabilities
        self.settings = settings(
            max_examples=profile["max_examples"],
            derandomize=profile["derandomize"],
            # A derandomized run must not replay examples saved by earlier runs (of other stores).
            database=None if profile["derandomize"] else settings.default.database,  # type: ignore[union-attr]
            deadline=None,
            suppress_health_check=list(HealthCheck),
            stateful_step_count=profile["stateful_steps"],
            phases=[phase for phase in Phase if profile["shrink"] or phase is not Phase.shrink],
        )
        self.stateful_settings = settings(self.settings, max_examples=profile["stateful_examples"])
        self.torn_down = False
        """Set by a rule that closed the store itself (the reopen step)."""

    def check(self, condition: bool, detail: str) -> None:
        """Fail the rule being checked unless `condition` holds."""
        if not condition:
            self.fail(detail)

    def fail(self, detail: str) -> NoReturn:
        raise ConformanceFailure(self.rule.name, detail)

    def run(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)

    def context(self) -> Any:
        """A context for a brand-new owner."""
        return self.suite.make_context(f"conformance-{uuid.uuid4().hex}")

    def fresh_id(self, prefix: str) -> str:
        """A new id for one example: `prefix_` and 8 random hex digits."""
        return f"{prefix}_{uuid.uuid4().hex[:8]}"

    def names(self, *names: str) -> tuple[str, ...]:
        """Fresh ids for one example: every name with one new suffix (`thr_1` ->
        `thr_1_3f9a2b1c`). Equal-length names keep their order; reuse inside the example
        stays reuse. No two examples (or rules, on a store kept between them) share an id,
        so a store keyed on thread id alone fails only the rules about owners."""
        token = uuid.uuid4().hex[:8]
        return tuple(f"{name}_{token}" for name in names)

    def fresh_like(self, value: str) -> str:
        """`value` (a generated or hostile id) made unique to this example: a new prefix, the
        value's characters kept, cut to the longest storable id."""
        fresh = f"{uuid.uuid4().hex[:8]}_{value}"
        while len(fresh.encode()) > MAX_ID_BYTES:
            fresh = fresh[:-1]
        return fresh

    def examples(
        self, *strats: st.SearchStrategy[Any], max_examples: int | None = None
    ) -> Callable[[Callable[..., Awaitable[None]]], None]:
        """Run an async check once per hypothesis example."""
        chosen = (
            self.settings
            if max_examples is None
            else settings(self.settings, max_examples=max_examples)
        )

        def wrap(check: Callable[..., Awaitable[None]]) -> None:
            @chosen
            @given(st.tuples(*strats))
            def run_example(values: tuple[Any, ...]) -> None:
                self.run(check(*values))

            run_example()

        return wrap


Scenario = Callable[[Any, Harness], Awaitable[None] | None]


def rule(
    name: str,
    description: str,
    *,
    protects: str,
    tier: Tier = "contract",
    needs: tuple[str, ...] = (),
    depends: tuple[str, ...] | None = None,
    relies_on: tuple[str, ...] = (),
) -> Callable[[Scenario], Callable[[Any], None]]:
    """Register a rule and turn its scenario `(self, h)` into a test method.

    `depends` names the probe's facts the rule relies on (default: all of them), `relies_on`
    other rules, each defined (and so run) before this one.
    """

    def decorate(scenario: Scenario) -> Callable[[Any], None]:
        if name in RULES:
            raise ValueError(f"rule {name!r} is defined twice")
        later = [other for other in relies_on if other not in RULES or other == name]
        if later:
            raise ValueError(f"rule {name!r} relies on {later}: define those rules before it")
        facts = ALL_FACTS if depends is None else depends
        if depends is None and (tier == "attachment-index" or name in _ON_ITS_OWN_DATA):
            facts = ()
        needed = frozenset(needs) | _EXTRA_NEEDS.get(name, frozenset())
        info = Rule(name, description, tier, protects, needed, facts, tuple(relies_on))
        RULES[name] = info

        def test(self: SuiteBase) -> None:
            self._run_rule(info, scenario)

        expected = "test_" + name.replace("-", "_")
        if scenario.__name__ != expected:  # pytest test names are the rule names
            raise ValueError(f"rule {name!r}: name its scenario method {expected}")
        test.__name__ = scenario.__name__
        test.__qualname__ = scenario.__qualname__
        test.__doc__ = f"[{name}] {description}"
        test.conformance_rule = info  # type: ignore[attr-defined]
        return test

    return decorate


def rule_of(method: Any) -> Rule | None:
    """The rule a test method checks, if it is one."""
    info = getattr(method, "conformance_rule", None)
    return info if isinstance(info, Rule) else None


def _flaky_detail(exc: BaseException, recorder: StoreRecorder) -> str:
    inner = [e for e in getattr(exc, "exceptions", ()) if isinstance(e, BaseException)]
    first = next((str(e) for e in inner if isinstance(e, ConformanceFailure)), None)
    if first is None and inner:
        first = f"{type(inner[0]).__name__}: {inner[0]}"
    last = recorder.last_call or "no store call"
    detail = (
        "state leaks between examples: the same example behaved differently when it ran "
        f"again on fresh owners (last store call `{last}`). Each example uses new user ids, "
        "so something the store keeps outside an owner's rows changed the result"
    )
    return detail + (f"; first run: {first}" if first else "")


def attribute(rule_name: str, exc: Exception, recorder: StoreRecorder) -> ConformanceFailure:
    """Turn an unexpected exception into a failure that says where it came from."""
    if isinstance(exc, Flaky):
        return ConformanceFailure(rule_name, _flaky_detail(exc, recorder))
    call = recorder.call_that_raised(exc)
    if call is not None:
        return ConformanceFailure(
            rule_name,
            f"the store raised {type(exc).__name__}: {exc} in `{call}` while checking {rule_name}",
        )
    after = f" (after the store call `{recorder.last_call}`)" if recorder.last_call else ""
    return ConformanceFailure(
        rule_name, f"{type(exc).__name__}: {exc}{after} while checking {rule_name}"
    )


class SuiteBase:
    """Configuration hooks a user overrides, and the machinery that runs one rule."""

    conformance_profile: str = "ci"
    supports_attachments: bool | None = None
    """None: detect (a NotImplementedError from save_attachment means no); or declare it."""
    items_written_elsewhere: bool = False
    """True for a projection store: items come from another component, and add_thread_item /
    save_item store nothing. Rules that write items are then reported not supported."""
    loop_cpu_threshold_ms: float = 10.0
    """`does-not-block-loop`: a call that runs this much CPU without yielding is CPU-bound."""
    loop_block_threshold_ms: float = 1.0
    """`does-not-block-loop`, only where the platform has no scheduler statistics (not Linux):
    a call off the CPU this long without yielding blocked on I/O."""

    def make_store(self) -> Store[Any] | Awaitable[Store[Any]]:
        raise NotImplementedError(f"{type(self).__name__} must define make_store()")

    def teardown_store(self, store: Any) -> Awaitable[None] | None:
        return None

    def make_context(self, user_id: str) -> Any:
        return ConformanceContext(user_id)

    def _profile(self) -> dict[str, Any]:
        name = os.environ.get(PROFILE_ENV) or self.conformance_profile
        if name not in PROFILES:
            raise ValueError(f"unknown conformance profile {name!r}; use one of {sorted(PROFILES)}")
        return PROFILES[name]

    def _run_rule(self, info: Rule, scenario: Scenario) -> None:
        failed = _FAILED.setdefault(type(self), set())
        failed.discard(info.name)
        try:
            self._run_rule_once(info, scenario, failed)
        except ConformanceFailure:
            failed.add(info.name)
            raise

    def _run_rule_once(self, info: Rule, scenario: Scenario, failed: set[str]) -> None:
        profile = self._profile()
        loop = asyncio.new_event_loop()
        try:
            with quiet_suite():
                made = self.make_store()
                store = loop.run_until_complete(made) if inspect.isawaitable(made) else made
                recorder = StoreRecorder(store)
                harness: Harness | None = None
                try:
                    capabilities = loop.run_until_complete(
                        detect_capabilities(store, self, info.needs)
                    )
                    missing = capabilities.missing(info.needs)
                    if missing is not None:
                        raise NotSupported(info.name, missing)
                    h = harness = Harness(self, info, loop, recorder, profile, capabilities)
                    from ._probe import run_probe

                    probe = run_probe(h, type(self), capabilities.item_writes)
                    if info.name in probe.broken:  # this rule's own fact: reported here
                        raise ConformanceFailure(info.name, probe.broken[info.name])
                    blocker = probe.blocker(info.name, info.depends)
                    if blocker is None:
                        blocker = next((r for r in info.relies_on if r in failed), None)
                    if blocker is not None:
                        raise NotChecked(info.name, blocker)
                    outcome = scenario(self, h)
                    if inspect.isawaitable(outcome):
                        loop.run_until_complete(outcome)
                except ConformanceFailure as failure:
                    _shorten_notes(failure)
                    raise
                except (NotSupported, NotChecked):
                    raise
                except Flaky as exc:
                    # The diagnosis says it all: no hypothesis replay error beside it.
                    raise attribute(info.name, exc, recorder) from None
                except Exception as exc:
                    raise attribute(info.name, exc, recorder) from exc
                finally:
                    if harness is None or not harness.torn_down:
                        done = self.teardown_store(store)
                        if inspect.isawaitable(done):
                            loop.run_until_complete(done)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


_FAILED: weakref.WeakKeyDictionary[type[Any], set[str]] = weakref.WeakKeyDictionary()
"""Per suite class: the rules that failed so far in this process (`relies_on` reads it). A
rule relied on that passed, was not checked or did not run (selected out) blocks nothing."""


def _shorten_notes(failure: BaseException) -> None:
    """Cut hypothesis's notes (the falsifying example, stateful steps) so a generated value
    thousands of characters long does not fill the report."""
    notes = getattr(failure, "__notes__", None)
    if isinstance(notes, list):
        notes[:] = [
            note if len(note) <= 300 else f"{note[:280]}... ({len(note)} chars)" for note in notes
        ]


@dataclass(frozen=True)
class ConformanceContext:
    """The default request context: the owner is `user_id`."""

    user_id: str
