"""The probe phase: a store's basic facts, found once before the rules run.

A store keyed on thread id alone, or one whose `add_thread_item` duplicates rows, breaks almost
every rule with that one fact. The probe checks each fact with a few calls on fresh owners and
ids; a broken fact is reported once, under its own rule, with what a ChatKit user would see;
every rule that depends on it is reported "not checked: blocked by <rule>" instead of failing
under its own name. A fact whose own prerequisite is broken is not checked either.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chatkit.store import NotFoundError

from ._harness import ALL_FACTS, MESSAGE_LIMIT, ConformanceFailure, Harness, attribute
from ._values import T0, assistant, ids, raises_not_found, short, thread


@dataclass(frozen=True)
class Fact:
    """One basic fact about a store, reported under the rule `rule`."""

    rule: str
    fact: str
    impact: str
    """What a ChatKit user sees when the fact does not hold."""
    check: Callable[[Harness], Awaitable[None]]
    after: tuple[str, ...] = ()
    """Facts (by rule) that must hold for this one to be checked."""


@dataclass
class ProbeResult:
    """The probe's findings: broken facts by rule, and facts that could not be checked."""

    broken: dict[str, str] = field(default_factory=dict)
    """Rule name -> what the probe saw (and what a user would see)."""
    blocked: dict[str, str] = field(default_factory=dict)
    """Rule name of a fact not checked -> the rule of the broken fact blocking it."""

    def blocker(self, rule_name: str, depends: tuple[str, ...]) -> str | None:
        """The broken fact's rule that blocks `rule_name`, if any."""
        if rule_name in self.blocked:
            return self.blocked[rule_name]
        for fact in depends:
            if fact == rule_name:
                continue
            if fact in self.broken:
                return fact
            if fact in self.blocked:
                return self.blocked[fact]
        return None


async def _threads_scoped_by_owner(h: Harness) -> None:
    alice, bob = h.context(), h.context()
    tid = h.fresh_id("thr_probe")
    await h.store.save_thread(thread(tid, title="alice's"), alice)
    # What the first owner reads back is the baseline: a store that changes values on the way
    # (titles, timestamps) breaks round-trip rules, not owner scoping.
    before = await h.store.load_thread(tid, alice)
    exc = await raises_not_found(h.store.load_thread(tid, bob))
    h.check(exc is not None, f"load_thread({tid!r}) by a second owner loaded the first's thread")
    listed = await h.store.load_threads(10, None, "desc", bob)
    h.check(
        tid not in ids(listed.data),
        f"load_threads(10, None, 'desc') of a second owner lists the first owner's {tid!r}",
    )
    await h.store.save_thread(thread(tid, title="bob's"), bob)
    loaded = await h.store.load_thread(tid, alice)
    h.check(
        loaded.title == before.title,
        f"save_thread({tid!r}) by a second owner changed the first owner's thread: title "
        f"expected {short(before.title)}, got {short(loaded.title)}",
    )


async def _items_scoped_by_thread_and_owner(h: Harness) -> None:
    alice, bob = h.context(), h.context()
    # Three thread ids: this fact does not rely on thread keys being scoped by owner.
    first, second, third = (h.fresh_id("thr_probe") for _ in range(3))
    item_id = h.fresh_id("msg_probe")
    rows = [(alice, first, "one"), (alice, second, "two"), (bob, third, "bob's")]
    for ctx, tid, _ in rows:
        await h.store.save_thread(thread(tid), ctx)
    for n, (ctx, tid, text) in enumerate(rows):
        await h.store.add_thread_item(tid, assistant(item_id, tid, T0, text), ctx)
        if n == 0:
            stored = await raises_not_found(h.store.load_item(tid, item_id, ctx))
            h.check(
                stored is None,
                f"load_item({tid!r}, {item_id!r}) right after add_thread_item raised "
                "NotFoundError: the item was not stored (a projection store whose items are "
                "written elsewhere declares items_written_elsewhere)",
            )
    for n, (ctx, tid, text) in enumerate(rows):
        who = "the second owner's" if n == 2 else "the first owner's"
        try:
            loaded = await h.store.load_item(tid, item_id, ctx)
        except NotFoundError:
            h.fail(
                f"load_item({tid!r}, {item_id!r}) of {who} row raised NotFoundError after the "
                "same item id was written to another thread or owner"
            )
        got = getattr(getattr(loaded, "content", [None])[0], "text", None)
        h.check(
            got == text and loaded.thread_id == tid,
            f"load_item({tid!r}, {item_id!r}) of {who} row: text expected {text!r}, got "
            f"{short(got)} (thread_id {short(loaded.thread_id, 30)}): the same item id in "
            "another thread or owner overwrote it",
        )


async def _add_is_idempotent(h: Harness) -> None:
    ctx = h.context()
    tid = h.fresh_id("thr_probe")
    await h.store.save_thread(thread(tid), ctx)
    first, second = f"{tid}_m0", f"{tid}_m1"  # fresh item ids: no other fact involved
    for i, item_id in enumerate((first, second)):
        await h.store.add_thread_item(tid, assistant(item_id, tid, T0 + timedelta(seconds=i)), ctx)
    again = assistant(first, tid, T0 + timedelta(seconds=5), "second version")
    await h.store.add_thread_item(tid, again, ctx)
    page = await h.store.load_thread_items(tid, None, 10, "asc", ctx)
    h.check(
        sorted(ids(page.data)) == [first, second],
        f"load_thread_items({tid!r}) after add_thread_item of an existing {first!r} lists "
        f"{short(ids(page.data))}, expected each of the two items once",
    )


async def _unknown_cursor_does_not_restart(h: Harness) -> None:
    ctx = h.context()
    tid = h.fresh_id("thr_probe")
    await h.store.save_thread(thread(tid), ctx)
    for i in range(3):
        item = assistant(f"{tid}_m{i}", tid, T0 + timedelta(seconds=i))
        await h.store.add_thread_item(tid, item, ctx)
    for order in ("asc", "desc"):
        try:
            page = await h.store.load_thread_items(tid, "msg_missing", 2, order, ctx)
        except NotFoundError:
            continue
        h.check(
            page.data == [] and not page.has_more,
            f"load_thread_items({tid!r}, 'msg_missing', 2, {order!r}) gave "
            f"{short(ids(page.data))} has_more={page.has_more}: an unknown cursor restarts "
            "the listing",
        )


async def _five_items(h: Harness) -> tuple[Any, str, list[str]]:
    """A fresh owner's thread of five items, stamped a second apart, added in time order."""
    ctx = h.context()
    tid = h.fresh_id("thr_probe")
    await h.store.save_thread(thread(tid), ctx)
    token = tid[-6:]  # short fresh ids keep the messages short; lexical order = time order
    names = [f"m{i}_{token}" for i in range(5)]
    for i, item_id in enumerate(names):
        await h.store.add_thread_item(tid, assistant(item_id, tid, T0 + timedelta(seconds=i)), ctx)
    return ctx, tid, names


async def _cursor_is_exclusive(h: Harness) -> None:
    ctx, tid, names = await _five_items(h)
    for order in ("asc", "desc"):
        for n in (1, 3):
            cursor = names[n]
            # Room for every row: a page that starts over, or at the cursor, includes it.
            page = await h.store.load_thread_items(tid, cursor, 10, order, ctx)
            got = ids(page.data)
            beyond = names[n + 1 :] if order == "asc" else names[:n]
            shown = f"load_thread_items({tid!r}, {cursor!r}, 10, {order!r}) gave {short(got)}"
            h.check(cursor not in got, f"{shown}: the page includes its cursor row")
            h.check(
                sorted(got) == sorted(beyond),
                f"{shown}; expected the rows past the cursor, {short(beyond)}",
            )


async def _has_more_comes_with_cursor(h: Harness) -> None:
    ctx, tid, names = await _five_items(h)
    for order in ("asc", "desc"):
        after: str | None = None
        seen: list[str] = []
        for number in range(1, 4):  # pages of 2, 2 and 1
            page = await h.store.load_thread_items(tid, after, 2, order, ctx)
            got = ids(page.data)
            shown = (
                f"load_thread_items({tid!r}, {short(after, 40)}, 2, {order!r}) of 5 items gave "
                f"{short(got)} has_more={page.has_more} after={short(page.after, 40)}"
            )
            more = number < 3
            h.check(page.has_more == more, f"{shown}; expected has_more={more}")
            if not more:
                seen += got
                break
            h.check(
                bool(got) and page.after == got[-1],
                f"{shown}: has_more=True needs after=<id of the page's last row>",
            )
            seen += got
            after = page.after
        h.check(
            sorted(seen) == names and len(seen) == len(names),
            f"the {order} walk of 5 items in pages of 2 listed {short(seen)}, expected each once",
        )


FACTS: tuple[Fact, ...] = (
    Fact(
        "owner-isolation",
        "thread keys are scoped by owner",
        "a thread id used by two users leaks, overwrites or refuses one of them",
        _threads_scoped_by_owner,
    ),
    Fact(
        "same-id-two-rows",
        "item keys are scoped by thread and owner",
        "a message changes or vanishes when another thread reuses its id (Chat Completions "
        "names every message `__fake_id__`)",
        _items_scoped_by_thread_and_owner,
    ),
    Fact(
        "add-item-idempotent",
        "add_thread_item of an existing id stores it once",
        "a message shows twice, or the stream fails, when the server adds an item again",
        _add_is_idempotent,
    ),
    Fact(
        "unknown-cursor",
        "an unknown cursor raises NotFoundError or gives an empty page",
        "scrolling back repeats the first messages; upstream's retry walk loops forever",
        _unknown_cursor_does_not_restart,
    ),
    Fact(
        "exclusive-cursor",
        "a page after=X lists the rows past X, not X",
        "scrolling back repeats the message at each page boundary, or starts over",
        _cursor_is_exclusive,
    ),
    Fact(
        "has-more-needs-cursor",
        "has_more=True comes with after=<the last row's id>",
        "older messages never load; `while has_more: after = page.after` starts over forever",
        _has_more_comes_with_cursor,
        after=("exclusive-cursor",),
    ),
)
FACT_RULES: tuple[str, ...] = tuple(fact.rule for fact in FACTS)
assert FACT_RULES == ALL_FACTS

_RESULTS: weakref.WeakKeyDictionary[type[Any], ProbeResult] = weakref.WeakKeyDictionary()


def cached_probe(suite_class: type[Any]) -> ProbeResult | None:
    return _RESULTS.get(suite_class)


def run_probe(h: Harness, suite_class: type[Any], item_writes: bool) -> ProbeResult:
    """Check every fact once per suite class (a pytest run builds one instance per test)."""
    found = _RESULTS.get(suite_class)
    if found is not None:
        return found
    result = ProbeResult()
    for fact in FACTS:
        if not item_writes and fact.rule != "owner-isolation":
            continue  # items are written elsewhere: the item facts cannot be probed
        blocking = None
        for needed in fact.after:
            if needed in result.broken or needed in result.blocked:
                blocking = result.blocked.get(needed, needed)
                break
        if blocking is not None:
            result.blocked[fact.rule] = blocking
            continue
        try:
            h.run(fact.check(h))
        except ConformanceFailure as failure:
            result.broken[fact.rule] = _diagnosis(fact, failure.detail)
        except Exception as exc:
            detail = attribute(fact.rule, exc, h.recorder).detail
            result.broken[fact.rule] = _diagnosis(fact, detail)
    _RESULTS[suite_class] = result
    return result


def _diagnosis(fact: Fact, detail: str) -> str:
    """`probe (<fact>): <what the probe saw>. In ChatKit: <impact>`, within MESSAGE_LIMIT."""
    head, tail = f"probe ({fact.fact}) fails: ", f". In ChatKit: {fact.impact}"
    room = MESSAGE_LIMIT - len(fact.rule) - 3 - len(head) - len(tail)
    if len(detail) > room:
        detail = detail[: room - 3] + "..."
    return f"{head}{detail}{tail}"
