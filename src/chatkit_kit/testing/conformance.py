"""`StoreConformance`: the ChatKit store contract as a pytest test class.

Subclass it in a test module, say how to build a store, and pytest runs every rule against it::

    from chatkit_kit.testing import StoreConformance

    class TestMyStore(StoreConformance):
        async def make_store(self):
            return MyStore(...)

Each test method runs on its own event loop (no pytest-asyncio needed) and builds one store with
`make_store`; every hypothesis example then works with fresh owners (new user ids), so the store
never has to be emptied between examples. A failure names the contract rule that broke.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from chatkit.store import NotFoundError, Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    FileAttachment,
    HiddenContextItem,
    ImageAttachment,
    InferenceOptions,
    LockedStatus,
    Page,
    SDKHiddenContextItem,
    Thread,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from ..stores._rules import MAX_ID_LENGTH
from . import strategies
from ._model import ReferenceModel, expected_page

__all__ = [
    "RULES",
    "ConformanceContext",
    "ConformanceFailure",
    "ConformanceReport",
    "StoreConformance",
    "run_conformance",
]

T = TypeVar("T")

RULES: dict[str, str] = {
    "thread-round-trip": "load_thread returns the saved ThreadMetadata, field for field",
    "thread-upsert": "save_thread of an existing id replaces it (no duplicate, no error)",
    "thread-metadata-only": "save_thread of a Thread stores only its ThreadMetadata fields",
    "thread-not-found": "load_thread of a missing id raises NotFoundError('Thread <id> not found')",
    "item-round-trip": "every ThreadItem type comes back equal from load_item and "
    "load_thread_items",
    "attachment-round-trip": "attachments round-trip, save_attachment upserts, delete removes",
    "items-ordered-by-created-at": "items are ordered by created_at, never by id",
    "exclusive-cursor": "`after` is exclusive: a page starts strictly after the cursor row",
    "has-more-needs-cursor": "has_more=True comes with after=<id of the page's last row>; "
    "an exact fit has has_more=False",
    "ties-insertion-order": "equal created_at values keep insertion order; desc is the exact "
    "reverse of asc; page boundaries inside a tie skip or repeat nothing",
    "unknown-cursor": "an `after` that names no row raises NotFoundError",
    "hidden-item-cursor": "hidden context items can be page cursors",
    "add-item-idempotent": "add_thread_item of an existing id stores the new payload at the "
    "original position, without duplicating it",
    "save-item-upsert": "save_item inserts a missing item and replaces an existing one in place, "
    "even with another item type",
    "item-not-found": "load_item of a missing id, or from another thread, raises NotFoundError",
    "delete-thread-cascades": "delete_thread removes the thread and all its items",
    "delete-thread-item": "delete_thread_item removes exactly that item of that thread",
    "deletes-are-idempotent": "deleting missing threads, items and attachments is a silent no-op",
    "owner-isolation": "one owner's rows are invisible to, and untouched by, every other owner",
    "datetimes-exact": "created_at comes back exactly: naive stays naive, aware keeps its "
    "offset, microseconds kept",
    "returned-copies": "mutating saved or loaded objects cannot change stored state",
    "bad-order-and-limit": "an order other than asc/desc or a limit below 1 raises ValueError; "
    "huge limits are capped",
    "hostile-ids-are-data": "ids with quotes, wildcards, backslashes and 512 characters are data",
    "unstorable-ids": "ids with NUL or over 512 characters are rejected on write and not "
    "found on read",
    "timestamps-strictly-ordered": "items created in a tight loop come back strictly ordered",
    "threads-pagination": "load_threads pages threads by created_at with the same cursor rules",
    "unknown-thread-empty-page": "load_thread_items of an unknown thread returns an empty page",
    "id-generation": "generated thread and item ids are unique, storable strings",
    "stateful-model": "random sequences of all twelve operations by two owners match the "
    "reference model, including every page of every pagination walk",
}


class ConformanceFailure(AssertionError):
    """A store broke a contract rule; `rule` is its key in RULES."""

    def __init__(self, rule_name: str, detail: str) -> None:
        self.rule = rule_name
        super().__init__(f"[{rule_name}] {RULES[rule_name]}: {detail}")


def _check(condition: bool, rule_name: str, detail: str) -> None:
    if not condition:
        raise ConformanceFailure(rule_name, detail)


@dataclass(frozen=True)
class ConformanceContext:
    """The default request context: the owner is `user_id`."""

    user_id: str


_PROFILES: dict[str, dict[str, Any]] = {
    # Sized so the whole suite runs in well under a minute per store on 2 cores.
    # Failing examples are reported as found (no shrinking), so a broken store fails fast.
    "ci": {
        "max_examples": 50,
        "stateful_examples": 50,
        "stateful_steps": 30,
        "derandomize": True,
        "shrink": False,
    },
    # For release runs: CHATKIT_KIT_CONFORMANCE_PROFILE=deep.
    "deep": {
        "max_examples": 400,
        "stateful_examples": 300,
        "stateful_steps": 80,
        "derandomize": False,
        "shrink": True,
    },
}
PROFILE_ENV = "CHATKIT_KIT_CONFORMANCE_PROFILE"


def _rule(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        method.__conformance_rule__ = name  # type: ignore[attr-defined]
        return method

    return mark


class _Harness:
    """One test's event loop and store, plus helpers to make owners and run coroutines."""

    def __init__(
        self,
        suite: StoreConformance,
        loop: asyncio.AbstractEventLoop,
        store: Any,
        profile: dict[str, Any],
    ):
        self.suite = suite
        self.loop = loop
        self.store: Store[Any] = store
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

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def context(self) -> Any:
        """A context for a brand-new owner."""
        return self.suite.make_context(f"conformance-{uuid.uuid4().hex}")

    def examples(self, *strats: st.SearchStrategy[Any]) -> Callable[..., Any]:
        """Run an async check once per hypothesis example."""

        def wrap(check: Callable[..., Awaitable[None]]) -> None:
            @self.settings
            @given(st.tuples(*strats))
            def run_example(values: tuple[Any, ...]) -> None:
                self.run(check(*values))  # type: ignore[arg-type]

            run_example()

        return wrap


async def _raises_not_found(awaitable: Awaitable[Any]) -> NotFoundError | None:
    try:
        await awaitable
    except NotFoundError as exc:
        return exc
    return None


async def _raises(awaitable: Awaitable[Any], kind: type[BaseException]) -> bool:
    try:
        await awaitable
    except kind:
        return True
    return False


async def _walk(
    load: Callable[[str | None, int], Awaitable[Page[Any]]],
    limit: int,
    rule_name: str,
    max_pages: int,
) -> list[Any]:
    """Follow `after` cursors to the end, checking every page; return all rows."""
    rows: list[Any] = []
    after: str | None = None
    for _ in range(max_pages):
        page = await load(after, limit)
        _check(
            len(page.data) <= limit, rule_name, f"page of {len(page.data)} rows for limit {limit}"
        )
        if page.has_more:
            _check(
                bool(page.data) and page.after == page.data[-1].id,
                "has-more-needs-cursor",
                f"has_more=True with after={page.after!r}, last row "
                f"{page.data[-1].id if page.data else None!r}",
            )
        else:
            _check(not page.after, "has-more-needs-cursor", f"after={page.after!r} on last page")
        rows.extend(page.data)
        if not page.has_more:
            return rows
        after = page.after
    raise ConformanceFailure(rule_name, f"pagination did not end within {max_pages} pages")


def _ids(rows: list[Any]) -> list[str]:
    return [row.id for row in rows]


def _user_message(
    item_id: str, thread_id: str, created_at: datetime, text: str = "hi"
) -> ThreadItem:
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=created_at,
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )


def _assistant(item_id: str, thread_id: str, created_at: datetime, text: str = "ok") -> ThreadItem:
    return AssistantMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=created_at,
        content=[AssistantMessageContent(text=text)],
    )


_T0 = datetime(2026, 1, 2, 3, 4, 5, 123456)


class StoreConformance:
    """The ChatKit store contract as tests. Subclass it and define `make_store`.

    - `make_store()` (sync or async) returns a store; called once per test method, inside that
      test's event loop.
    - `teardown_store(store)` (sync or async, optional) releases it.
    - `make_context(user_id)` (optional) builds the request context for an owner; the default
      is `ConformanceContext(user_id)`, which stores with the default owner resolver accept.
      Different `user_id`s must map to different owners.
    - `conformance_profile` is "ci" (default) or "deep"; the environment variable
      CHATKIT_KIT_CONFORMANCE_PROFILE overrides it.
    """

    conformance_profile: str = "ci"

    def make_store(self) -> Store[Any] | Awaitable[Store[Any]]:
        raise NotImplementedError(f"{type(self).__name__} must define make_store()")

    def teardown_store(self, store: Any) -> Awaitable[None] | None:
        return None

    def make_context(self, user_id: str) -> Any:
        return ConformanceContext(user_id)

    # Machinery

    def _profile_name(self) -> str:
        name = os.environ.get(PROFILE_ENV) or self.conformance_profile
        if name not in _PROFILES:
            raise ValueError(
                f"unknown conformance profile {name!r}; use one of {sorted(_PROFILES)}"
            )
        return name

    def _run(self, rule_name: str, scenario: Callable[[_Harness], None]) -> None:
        profile = _PROFILES[self._profile_name()]
        loop = asyncio.new_event_loop()
        try:
            made = self.make_store()
            store = loop.run_until_complete(made) if inspect.isawaitable(made) else made
            try:
                scenario(_Harness(self, loop, store, profile))
            except ConformanceFailure:
                raise
            except Exception as exc:
                raise ConformanceFailure(rule_name, f"the store raised {exc!r}") from exc
            finally:
                done = self.teardown_store(store)
                if inspect.isawaitable(done):
                    loop.run_until_complete(done)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _scenario(self, rule_name: str, check: Callable[[_Harness], Awaitable[None]]) -> None:
        self._run(rule_name, lambda h: h.run(check(h)))  # type: ignore[arg-type]

    # Threads

    @_rule("thread-round-trip")
    def test_thread_round_trip(self) -> None:
        def scenario(h: _Harness) -> None:
            @h.examples(strategies.thread_metadata())
            async def check(thread: ThreadMetadata) -> None:
                ctx = h.context()
                await h.store.save_thread(thread, ctx)
                loaded = await h.store.load_thread(thread.id, ctx)
                _check(
                    loaded == thread, "thread-round-trip", f"saved {thread!r}, loaded {loaded!r}"
                )
                _check(
                    loaded.created_at.utcoffset() == thread.created_at.utcoffset(),
                    "datetimes-exact",
                    f"created_at {thread.created_at!r} came back as {loaded.created_at!r}",
                )

        self._run("thread-round-trip", scenario)

    @_rule("thread-upsert")
    def test_thread_upsert(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            await h.store.save_thread(
                ThreadMetadata(id="thr_1", created_at=_T0, title="first"), ctx
            )
            updated = ThreadMetadata(
                id="thr_1",
                created_at=_T0,
                title="second",
                status=LockedStatus(reason="done"),
                metadata={"k": [1, "v"]},
            )
            await h.store.save_thread(updated, ctx)
            loaded = await h.store.load_thread("thr_1", ctx)
            _check(loaded == updated, "thread-upsert", f"expected {updated!r}, loaded {loaded!r}")
            page = await h.store.load_threads(10, None, "desc", ctx)
            _check(_ids(page.data) == ["thr_1"], "thread-upsert", f"threads: {_ids(page.data)}")

        self._scenario("thread-upsert", check)

    @_rule("thread-metadata-only")
    def test_thread_instance_stores_metadata_only(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            item = _user_message("msg_1", "thr_1", _T0)
            thread = Thread(id="thr_1", created_at=_T0, title="t", items=Page(data=[item]))
            await h.store.save_thread(thread, ctx)
            loaded = await h.store.load_thread("thr_1", ctx)
            _check(
                type(loaded) is ThreadMetadata,
                "thread-metadata-only",
                f"load_thread returned a {type(loaded).__name__}, expected plain ThreadMetadata",
            )
            try:
                Thread(**loaded.model_dump(), items=Page())
            except TypeError as exc:
                raise ConformanceFailure("thread-metadata-only", str(exc)) from exc
            expected = ThreadMetadata(id="thr_1", created_at=_T0, title="t")
            _check(loaded == expected, "thread-metadata-only", f"loaded {loaded!r}")
            items = await h.store.load_thread_items("thr_1", None, 10, "asc", ctx)
            _check(
                items.data == [], "thread-metadata-only", "save_thread stored the Thread's items"
            )

        self._scenario("thread-metadata-only", check)

    @_rule("thread-not-found")
    def test_load_thread_not_found(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            for missing in ("thr_missing", "x" * 10_000, "a\x00b", ""):
                exc = await _raises_not_found(h.store.load_thread(missing, ctx))
                _check(
                    exc is not None, "thread-not-found", f"no NotFoundError for {missing[:20]!r}"
                )
            exc = await _raises_not_found(h.store.load_thread("thr_missing", ctx))
            _check(
                "Thread thr_missing not found" in str(exc),
                "thread-not-found",
                f"message {str(exc)!r} lacks 'Thread thr_missing not found'",
            )

        self._scenario("thread-not-found", check)

    @_rule("threads-pagination")
    def test_load_threads_pages(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            for n, thread_id in enumerate(["thread2", "thread3", "thread1"]):
                offset = {"thread1": 0, "thread2": 1, "thread3": 2}[thread_id]
                await h.store.save_thread(
                    ThreadMetadata(id=thread_id, created_at=_T0 + timedelta(seconds=offset)), ctx
                )
                del n
            page1 = await h.store.load_threads(2, None, "asc", ctx)
            _check(
                _ids(page1.data) == ["thread1", "thread2"] and page1.has_more,
                "threads-pagination",
                f"first asc page {_ids(page1.data)}, has_more={page1.has_more}",
            )
            _check(page1.after == "thread2", "has-more-needs-cursor", f"after={page1.after!r}")
            page2 = await h.store.load_threads(2, page1.data[-1].id, "asc", ctx)
            _check(
                _ids(page2.data) == ["thread3"] and not page2.has_more and not page2.after,
                "threads-pagination",
                f"second asc page {_ids(page2.data)}, has_more={page2.has_more}",
            )
            desc = await h.store.load_threads(10, None, "desc", ctx)
            _check(
                _ids(desc.data) == ["thread3", "thread2", "thread1"],
                "threads-pagination",
                f"desc order {_ids(desc.data)}",
            )
            after = await h.store.load_threads(1, "thread2", "desc", ctx)
            _check(_ids(after.data) == ["thread1"], "exclusive-cursor", f"{_ids(after.data)}")

        self._scenario("threads-pagination", check)

    # Items

    @_rule("item-round-trip")
    def test_item_round_trip(self) -> None:
        def scenario(h: _Harness) -> None:
            @h.examples(strategies.thread_items())
            async def check(item: ThreadItem) -> None:
                ctx = h.context()
                await h.store.add_thread_item("thr_1", item, ctx)
                loaded = await h.store.load_item("thr_1", item.id, ctx)
                _check(loaded == item, "item-round-trip", f"saved {item!r}\nloaded {loaded!r}")
                _check(
                    loaded.created_at.utcoffset() == item.created_at.utcoffset(),
                    "datetimes-exact",
                    f"created_at {item.created_at!r} came back as {loaded.created_at!r}",
                )
                page = await h.store.load_thread_items("thr_1", None, 5, "asc", ctx)
                _check(page.data == [item], "item-round-trip", f"page {page.data!r}")

        self._run("item-round-trip", scenario)

    @_rule("items-ordered-by-created-at")
    def test_items_ordered_by_created_at(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            # Lexical id order differs from time order on purpose.
            ids = ["msg_100000", "msg_000001", "msg_050000", "msg_999999", "msg_000000"]
            inserts = [3, 0, 4, 1, 2]  # insertion order differs from time order too
            for index in inserts:
                created = _T0 + timedelta(seconds=index)
                await h.store.add_thread_item(
                    "thr_1", _assistant(ids[index], "thr_1", created), ctx
                )
            asc = await h.store.load_thread_items("thr_1", None, 10, "asc", ctx)
            desc = await h.store.load_thread_items("thr_1", None, 3, "desc", ctx)
            _check(_ids(asc.data) == ids, "items-ordered-by-created-at", f"asc {_ids(asc.data)}")
            _check(
                _ids(desc.data) == ids[::-1][:3],
                "items-ordered-by-created-at",
                f"desc {_ids(desc.data)}",
            )

        self._scenario("items-ordered-by-created-at", check)

    @_rule("exclusive-cursor")
    def test_exclusive_cursor(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            for i in range(5):
                item = _assistant(f"msg{i}", "thr_1", _T0 + timedelta(seconds=i))
                await h.store.add_thread_item("thr_1", item, ctx)
            page = await h.store.load_thread_items("thr_1", "msg1", 3, "asc", ctx)
            _check(
                _ids(page.data) == ["msg2", "msg3", "msg4"],
                "exclusive-cursor",
                f"asc after msg1: {_ids(page.data)}",
            )
            _check(
                not page.has_more and not page.after,
                "has-more-needs-cursor",
                f"exact fit gave has_more={page.has_more}, after={page.after!r}",
            )
            first = await h.store.load_thread_items("thr_1", None, 2, "asc", ctx)
            _check(
                _ids(first.data) == ["msg0", "msg1"] and first.has_more and first.after == "msg1",
                "has-more-needs-cursor",
                f"{_ids(first.data)} has_more={first.has_more} after={first.after!r}",
            )
            desc = await h.store.load_thread_items("thr_1", "msg3", 2, "desc", ctx)
            _check(
                _ids(desc.data) == ["msg2", "msg1"] and desc.has_more and desc.after == "msg1",
                "exclusive-cursor",
                f"desc after msg3: {_ids(desc.data)} has_more={desc.has_more}",
            )
            last = await h.store.load_thread_items("thr_1", "msg0", 2, "desc", ctx)
            _check(last.data == [] and not last.has_more, "exclusive-cursor", f"{_ids(last.data)}")

        self._scenario("exclusive-cursor", check)

    @_rule("has-more-needs-cursor")
    def test_pagination_walks(self) -> None:
        def scenario(h: _Harness) -> None:
            @h.examples(
                st.lists(strategies.created_at, min_size=0, max_size=9),
                st.integers(1, 4),
                st.sampled_from(["asc", "desc"]),
            )
            async def check(stamps: list[datetime], limit: int, order: str) -> None:
                ctx = h.context()
                model = ReferenceModel()
                for i, stamp in enumerate(stamps):
                    item = _assistant(f"i{i}", "thr", stamp)
                    await h.store.add_thread_item("thr", item, ctx)
                    model.upsert_item("o", "thr", item)
                    thread = ThreadMetadata(id=f"t{i}", created_at=stamp)
                    await h.store.save_thread(thread, ctx)
                    model.save_thread("o", thread)
                expected = expected_page(model.item_rows("o", "thr"), None, 10_000, order)
                assert expected is not None
                got = await _walk(
                    lambda after, n: h.store.load_thread_items("thr", after, n, order, ctx),
                    limit,
                    "has-more-needs-cursor",
                    len(stamps) + 2,
                )
                _check(got == expected.data, "has-more-needs-cursor", f"walk {_ids(got)}")
                expected_threads = expected_page(model.thread_rows("o"), None, 10_000, order)
                assert expected_threads is not None
                threads = await _walk(
                    lambda after, n: h.store.load_threads(n, after, order, ctx),
                    limit,
                    "has-more-needs-cursor",
                    len(stamps) + 2,
                )
                _check(
                    threads == expected_threads.data,
                    "threads-pagination",
                    f"walk {_ids(threads)}, expected {_ids(expected_threads.data)}",
                )

        self._run("has-more-needs-cursor", scenario)

    @_rule("ties-insertion-order")
    def test_ties_keep_insertion_order(self) -> None:
        def scenario(h: _Harness) -> None:
            @h.examples(
                st.lists(st.sampled_from([_T0, _T0, _T0 + timedelta(microseconds=1)]), max_size=10),
                st.integers(1, 3),
            )
            async def check(stamps: list[datetime], limit: int) -> None:
                ctx = h.context()
                model = ReferenceModel()
                items = [_assistant(f"m{i}", "thr", stamp) for i, stamp in enumerate(stamps)]
                for item in items:
                    await h.store.add_thread_item("thr", item, ctx)
                    model.upsert_item("o", "thr", item)
                for order in ("asc", "desc"):
                    expected = expected_page(model.item_rows("o", "thr"), None, 10_000, order)
                    assert expected is not None
                    got = await _walk(
                        lambda after, n: h.store.load_thread_items("thr", after, n, order, ctx),  # noqa: B023
                        limit,
                        "ties-insertion-order",
                        len(items) + 2,
                    )
                    _check(
                        _ids(got) == _ids(expected.data),
                        "ties-insertion-order",
                        f"{order} walk with limit {limit}: {_ids(got)}, expected "
                        f"{_ids(expected.data)}",
                    )

        self._run("ties-insertion-order", scenario)

    @_rule("unknown-cursor")
    def test_unknown_cursor(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            await h.store.save_thread(ThreadMetadata(id="thr_1", created_at=_T0), ctx)
            await h.store.add_thread_item("thr_1", _assistant("msg_1", "thr_1", _T0), ctx)
            await h.store.add_thread_item("thr_2", _assistant("msg_2", "thr_2", _T0), ctx)
            for order in ("asc", "desc"):
                for cursor in ("msg_missing", "msg_2"):
                    exc = await _raises_not_found(
                        h.store.load_thread_items("thr_1", cursor, 5, order, ctx)
                    )
                    _check(exc is not None, "unknown-cursor", f"items after {cursor!r} ({order})")
                exc = await _raises_not_found(h.store.load_threads(5, "thr_missing", order, ctx))
                _check(exc is not None, "unknown-cursor", f"threads after 'thr_missing' ({order})")

        self._scenario("unknown-cursor", check)

    @_rule("hidden-item-cursor")
    def test_hidden_items_are_cursors(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            items: list[ThreadItem] = [
                _user_message("m0", "thr", _T0),
                HiddenContextItem(
                    id="h1", thread_id="thr", created_at=_T0 + timedelta(1), content={"a": 1}
                ),
                SDKHiddenContextItem(
                    id="h2", thread_id="thr", created_at=_T0 + timedelta(2), content="x"
                ),
                _assistant("m3", "thr", _T0 + timedelta(3)),
            ]
            for item in items:
                await h.store.add_thread_item("thr", item, ctx)
            page = await h.store.load_thread_items("thr", "h2", 5, "desc", ctx)
            _check(_ids(page.data) == ["h1", "m0"], "hidden-item-cursor", f"{_ids(page.data)}")
            page = await h.store.load_thread_items("thr", "h1", 5, "asc", ctx)
            _check(_ids(page.data) == ["h2", "m3"], "hidden-item-cursor", f"{_ids(page.data)}")

        self._scenario("hidden-item-cursor", check)

    @_rule("add-item-idempotent")
    def test_add_thread_item_is_idempotent(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            for i in range(3):
                await h.store.add_thread_item(
                    "thr", _assistant(f"m{i}", "thr", _T0 + timedelta(seconds=i)), ctx
                )
            again = _assistant("m0", "thr", _T0 + timedelta(seconds=10), text="second version")
            await h.store.add_thread_item("thr", again, ctx)
            page = await h.store.load_thread_items("thr", None, 10, "asc", ctx)
            _check(
                _ids(page.data) == ["m0", "m1", "m2"],
                "add-item-idempotent",
                f"after re-adding m0: {_ids(page.data)}",
            )
            _check(page.data[0] == again, "add-item-idempotent", f"m0 is {page.data[0]!r}")

        self._scenario("add-item-idempotent", check)

    @_rule("save-item-upsert")
    def test_save_item_upserts(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            await h.store.save_item("thr", _user_message("m0", "thr", _T0), ctx)
            await h.store.add_thread_item("thr", _assistant("m1", "thr", _T0 + timedelta(1)), ctx)
            page = await h.store.load_thread_items("thr", None, 10, "asc", ctx)
            _check(_ids(page.data) == ["m0", "m1"], "save-item-upsert", "save_item did not insert")
            replacement = _assistant("m0", "thr", _T0 + timedelta(5), text="replaced")
            await h.store.save_item("thr", replacement, ctx)
            loaded = await h.store.load_item("thr", "m0", ctx)
            _check(loaded == replacement, "save-item-upsert", f"loaded {loaded!r}")
            page = await h.store.load_thread_items("thr", None, 10, "asc", ctx)
            _check(
                _ids(page.data) == ["m0", "m1"] and page.data[0] == replacement,
                "save-item-upsert",
                f"after replacement: {_ids(page.data)}",
            )

        self._scenario("save-item-upsert", check)

    @_rule("item-not-found")
    def test_load_item_not_found(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            await h.store.add_thread_item("thr_1", _assistant("m1", "thr_1", _T0), ctx)
            for thread_id, item_id in (("thr_1", "missing"), ("thr_2", "m1"), ("thr_1", "m\x00")):
                exc = await _raises_not_found(h.store.load_item(thread_id, item_id, ctx))
                _check(exc is not None, "item-not-found", f"load_item({thread_id!r}, {item_id!r})")

        self._scenario("item-not-found", check)

    @_rule("unknown-thread-empty-page")
    def test_unknown_thread_gives_empty_page(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            for thread_id in ("thr_missing", "x" * 10_000, "a\x00"):
                for order in ("asc", "desc"):
                    page = await h.store.load_thread_items(thread_id, None, 20, order, ctx)
                    _check(
                        page.data == [] and not page.has_more and not page.after,
                        "unknown-thread-empty-page",
                        f"load_thread_items({thread_id[:20]!r}) gave {page!r}",
                    )

        self._scenario("unknown-thread-empty-page", check)

    # Deletes

    @_rule("delete-thread-cascades")
    def test_delete_thread_removes_items(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            await h.store.save_thread(ThreadMetadata(id="thr_1", created_at=_T0), ctx)
            await h.store.save_thread(ThreadMetadata(id="thr_2", created_at=_T0), ctx)
            for i in range(3):
                await h.store.add_thread_item("thr_1", _assistant(f"m{i}", "thr_1", _T0), ctx)
            await h.store.add_thread_item("thr_2", _assistant("m0", "thr_2", _T0), ctx)
            await h.store.delete_thread("thr_1", ctx)
            exc = await _raises_not_found(h.store.load_thread("thr_1", ctx))
            _check(exc is not None, "delete-thread-cascades", "thread still loads")
            exc = await _raises_not_found(h.store.load_item("thr_1", "m1", ctx))
            _check(exc is not None, "delete-thread-cascades", "item of deleted thread loads")
            await h.store.save_thread(ThreadMetadata(id="thr_1", created_at=_T0), ctx)
            page = await h.store.load_thread_items("thr_1", None, 10, "asc", ctx)
            _check(page.data == [], "delete-thread-cascades", f"items survived: {_ids(page.data)}")
            other = await h.store.load_thread_items("thr_2", None, 10, "asc", ctx)
            _check(_ids(other.data) == ["m0"], "delete-thread-cascades", "other thread lost items")

        self._scenario("delete-thread-cascades", check)

    @_rule("delete-thread-item")
    def test_delete_thread_item(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            for i in range(3):
                await h.store.add_thread_item("thr_1", _assistant(f"m{i}", "thr_1", _T0), ctx)
            await h.store.add_thread_item("thr_2", _assistant("m1", "thr_2", _T0), ctx)
            await h.store.delete_thread_item("thr_1", "m1", ctx)
            page = await h.store.load_thread_items("thr_1", None, 10, "asc", ctx)
            _check(_ids(page.data) == ["m0", "m2"], "delete-thread-item", f"{_ids(page.data)}")
            kept = await h.store.load_item("thr_2", "m1", ctx)
            _check(kept.id == "m1", "delete-thread-item", "deleted the same id in another thread")

        self._scenario("delete-thread-item", check)

    @_rule("deletes-are-idempotent")
    def test_deletes_of_missing_rows_are_noops(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            await h.store.add_thread_item("thr_1", _assistant("m0", "thr_1", _T0), ctx)
            for _ in range(2):
                await h.store.delete_thread("thr_missing", ctx)
                await h.store.delete_thread_item("thr_1", "missing", ctx)
                await h.store.delete_thread_item("thr_missing", "m0", ctx)
                await h.store.delete_attachment("atc_missing", ctx)
                await h.store.delete_thread("a\x00", ctx)
                await h.store.delete_attachment("x" * 10_000, ctx)
            page = await h.store.load_thread_items("thr_1", None, 10, "asc", ctx)
            _check(_ids(page.data) == ["m0"], "deletes-are-idempotent", f"{_ids(page.data)}")

        self._scenario("deletes-are-idempotent", check)

    # Attachments

    @_rule("attachment-round-trip")
    def test_attachment_round_trip(self) -> None:
        def scenario(h: _Harness) -> None:
            @h.examples(strategies.attachments())
            async def check(attachment: Any) -> None:
                ctx = h.context()
                await h.store.save_attachment(attachment, ctx)
                loaded = await h.store.load_attachment(attachment.id, ctx)
                _check(loaded == attachment, "attachment-round-trip", f"loaded {loaded!r}")
                sent = attachment.model_copy(update={"thread_id": "thr_sent"})
                await h.store.save_attachment(sent, ctx)
                loaded = await h.store.load_attachment(attachment.id, ctx)
                _check(loaded == sent, "attachment-round-trip", f"upsert gave {loaded!r}")
                await h.store.delete_attachment(attachment.id, ctx)
                exc = await _raises_not_found(h.store.load_attachment(attachment.id, ctx))
                _check(exc is not None, "attachment-round-trip", "deleted attachment loads")

        self._run("attachment-round-trip", scenario)

    # Owners

    @_rule("owner-isolation")
    def test_owner_isolation(self) -> None:
        async def check(h: _Harness) -> None:
            alice, bob = h.context(), h.context()
            thread = ThreadMetadata(id="thr_1", created_at=_T0, title="alice")
            item = _user_message("m1", "thr_1", _T0, text="alice's")
            attachment = FileAttachment(id="atc_1", name="a.txt", mime_type="text/plain")
            await h.store.save_thread(thread, alice)
            await h.store.add_thread_item("thr_1", item, alice)
            await h.store.save_attachment(attachment, alice)
            rule_name = "owner-isolation"
            _check(
                await _raises_not_found(h.store.load_thread("thr_1", bob)) is not None,
                rule_name,
                "another owner loaded the thread",
            )
            page = await h.store.load_thread_items("thr_1", None, 10, "desc", bob)
            _check(page.data == [], rule_name, "another owner listed the thread's items")
            _check(
                await _raises_not_found(h.store.load_item("thr_1", "m1", bob)) is not None,
                rule_name,
                "another owner loaded the item",
            )
            _check(
                await _raises_not_found(h.store.load_attachment("atc_1", bob)) is not None,
                rule_name,
                "another owner loaded the attachment",
            )
            threads = await h.store.load_threads(10, None, "desc", bob)
            _check(threads.data == [], rule_name, "another owner listed the thread")
            _check(
                await _raises_not_found(h.store.load_thread_items("thr_1", "m1", 10, "asc", bob))
                is not None,
                rule_name,
                "another owner used the item as a cursor",
            )
            # Bob writes and deletes under the same ids: Alice's rows must not change.
            await h.store.save_thread(ThreadMetadata(id="thr_1", created_at=_T0, title="bob"), bob)
            await h.store.add_thread_item("thr_1", _user_message("m1", "thr_1", _T0, "bob's"), bob)
            await h.store.save_item("thr_1", _assistant("m1", "thr_1", _T0, "bob's"), bob)
            await h.store.save_attachment(
                ImageAttachment(
                    id="atc_1",
                    name="b.png",
                    mime_type="image/png",
                    preview_url="https://b.example/",
                ),
                bob,
            )
            _check(
                await h.store.load_thread("thr_1", alice) == thread, rule_name, "thread overwritten"
            )
            _check(
                await h.store.load_item("thr_1", "m1", alice) == item, rule_name, "item overwritten"
            )
            _check(
                await h.store.load_attachment("atc_1", alice) == attachment,
                rule_name,
                "attachment overwritten",
            )
            bobs = await h.store.load_thread("thr_1", bob)
            _check(bobs.title == "bob", rule_name, "equal ids under two owners collide")
            await h.store.delete_thread_item("thr_1", "m1", bob)
            await h.store.delete_thread("thr_1", bob)
            await h.store.delete_attachment("atc_1", bob)
            _check(await h.store.load_thread("thr_1", alice) == thread, rule_name, "thread deleted")
            _check(await h.store.load_item("thr_1", "m1", alice) == item, rule_name, "item deleted")
            _check(
                await h.store.load_attachment("atc_1", alice) == attachment,
                rule_name,
                "attachment deleted by another owner",
            )
            mine = await h.store.load_threads(10, None, "desc", alice)
            _check(_ids(mine.data) == ["thr_1"], rule_name, f"alice's threads: {_ids(mine.data)}")

        self._scenario("owner-isolation", check)

    # Values

    @_rule("datetimes-exact")
    def test_datetimes_round_trip_exactly(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            stamps = [
                datetime(2026, 11, 25, 4, 56, 26, 698558),
                datetime(2026, 11, 25, 4, 56, 26),
                datetime(2026, 11, 25, 4, 56, 26, 1, tzinfo=timezone.utc),
                datetime(
                    2026, 11, 25, 4, 56, 26, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30))
                ),
                datetime(2026, 11, 25, 4, 56, 26, tzinfo=timezone(timedelta(hours=-8))),
            ]
            for i, stamp in enumerate(stamps):
                await h.store.save_thread(ThreadMetadata(id=f"t{i}", created_at=stamp), ctx)
                await h.store.add_thread_item("thr", _assistant(f"m{i}", "thr", stamp), ctx)
                for loaded in (
                    (await h.store.load_thread(f"t{i}", ctx)).created_at,
                    (await h.store.load_item("thr", f"m{i}", ctx)).created_at,
                ):
                    _check(
                        loaded == stamp
                        and loaded.utcoffset() == stamp.utcoffset()
                        and (loaded.tzinfo is None) == (stamp.tzinfo is None),
                        "datetimes-exact",
                        f"{stamp!r} came back as {loaded!r}",
                    )
            # Upstream computes naive datetime.now() - created_at on loaded items.
            loaded_item = await h.store.load_item("thr", "m0", ctx)
            try:
                datetime.now() - loaded_item.created_at
            except TypeError as exc:
                raise ConformanceFailure(
                    "datetimes-exact", f"naive arithmetic failed: {exc}"
                ) from exc

        self._scenario("datetimes-exact", check)

    @_rule("timestamps-strictly-ordered")
    def test_tight_loop_timestamps_strictly_ordered(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            created: list[datetime] = []
            for i in range(25):
                stamp = datetime.now()
                while created and stamp <= created[-1]:
                    stamp = datetime.now()
                created.append(stamp)
                await h.store.add_thread_item("thr", _assistant(f"m{i:02d}", "thr", stamp), ctx)
            first = await h.store.load_thread_items("thr", None, 20, "desc", ctx)
            rest = await h.store.load_thread_items("thr", first.data[-1].id, 20, "desc", ctx)
            got = [item.created_at for item in first.data + rest.data]
            _check(
                len(first.data) == 20 and len(rest.data) == 5,
                "timestamps-strictly-ordered",
                f"pages of {len(first.data)} and {len(rest.data)}, expected 20 and 5",
            )
            _check(
                all(a > b for a, b in itertools.pairwise(got)) and got == created[::-1],
                "timestamps-strictly-ordered",
                "created_at values are not strictly decreasing in desc order",
            )

        self._scenario("timestamps-strictly-ordered", check)

    @_rule("returned-copies")
    def test_returned_objects_are_copies(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            thread = ThreadMetadata(id="thr", created_at=_T0, title="kept", metadata={"k": [1]})
            item = _assistant("m0", "thr", _T0, text="kept")
            attachment = FileAttachment(
                id="atc", name="kept.txt", mime_type="text/plain", metadata={"key": "kept"}
            )
            await h.store.save_thread(thread, ctx)
            await h.store.add_thread_item("thr", item, ctx)
            await h.store.save_attachment(attachment, ctx)
            # Mutate what was saved...
            thread.title = "changed"
            thread.metadata["k"].append(2)
            assert isinstance(item, AssistantMessageItem)
            item.content[0].text = "changed"
            assert attachment.metadata is not None
            attachment.metadata["key"] = "changed"
            # ...and what was loaded.
            loaded_thread = await h.store.load_thread("thr", ctx)
            loaded_thread.title = "changed"
            loaded_thread.metadata["k"].append(3)
            loaded_item = await h.store.load_item("thr", "m0", ctx)
            assert isinstance(loaded_item, AssistantMessageItem)
            loaded_item.content.append(AssistantMessageContent(text="extra"))
            page = await h.store.load_thread_items("thr", None, 10, "asc", ctx)
            page.data[0].id = "changed"
            loaded_attachment = await h.store.load_attachment("atc", ctx)
            loaded_attachment.name = "changed"
            again = await h.store.load_thread("thr", ctx)
            _check(
                again.title == "kept" and again.metadata == {"k": [1]},
                "returned-copies",
                f"stored thread changed: {again!r}",
            )
            again_item = await h.store.load_item("thr", "m0", ctx)
            _check(
                again_item == _assistant("m0", "thr", _T0, text="kept"),
                "returned-copies",
                f"stored item changed: {again_item!r}",
            )
            again_att = await h.store.load_attachment("atc", ctx)
            _check(
                again_att.name == "kept.txt" and again_att.metadata == {"key": "kept"},
                "returned-copies",
                f"stored attachment changed: {again_att!r}",
            )

        self._scenario("returned-copies", check)

    # Bad input

    @_rule("bad-order-and-limit")
    def test_bad_order_and_limit(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            for i in range(3):
                await h.store.add_thread_item("thr", _assistant(f"m{i}", "thr", _T0), ctx)
                await h.store.save_thread(ThreadMetadata(id=f"t{i}", created_at=_T0), ctx)
            for order in ("ASC", "sideways", "asc; DROP TABLE items", ""):
                _check(
                    await _raises(
                        h.store.load_thread_items("thr", None, 5, order, ctx), ValueError
                    ),
                    "bad-order-and-limit",
                    f"load_thread_items accepted order={order!r}",
                )
                _check(
                    await _raises(h.store.load_threads(5, None, order, ctx), ValueError),
                    "bad-order-and-limit",
                    f"load_threads accepted order={order!r}",
                )
            for limit in (0, -1):
                _check(
                    await _raises(
                        h.store.load_thread_items("thr", None, limit, "asc", ctx), ValueError
                    ),
                    "bad-order-and-limit",
                    f"load_thread_items accepted limit={limit}",
                )
                _check(
                    await _raises(h.store.load_threads(limit, None, "asc", ctx), ValueError),
                    "bad-order-and-limit",
                    f"load_threads accepted limit={limit}",
                )
            page = await h.store.load_thread_items("thr", None, 10**9, "asc", ctx)
            _check(len(page.data) == 3, "bad-order-and-limit", "a huge limit was not served")

        self._scenario("bad-order-and-limit", check)

    @_rule("hostile-ids-are-data")
    def test_hostile_ids_are_data(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            decoy = ThreadMetadata(id="axb", created_at=_T0, title="decoy")
            await h.store.save_thread(decoy, ctx)
            for n, hostile in enumerate(strategies.HOSTILE_IDS):
                stamp = _T0 + timedelta(seconds=n + 1)
                thread = ThreadMetadata(id=hostile, created_at=stamp, title=hostile)
                await h.store.save_thread(thread, ctx)
                item = _assistant(hostile, hostile, stamp, text=hostile)
                await h.store.add_thread_item(hostile, item, ctx)
                attachment = FileAttachment(id=hostile, name=hostile, mime_type="text/plain")
                await h.store.save_attachment(attachment, ctx)
                rule_name = "hostile-ids-are-data"
                _check(await h.store.load_thread(hostile, ctx) == thread, rule_name, repr(hostile))
                _check(
                    await h.store.load_item(hostile, hostile, ctx) == item, rule_name, repr(hostile)
                )
                _check(
                    await h.store.load_attachment(hostile, ctx) == attachment,
                    rule_name,
                    repr(hostile),
                )
                page = await h.store.load_thread_items(hostile, hostile, 5, "desc", ctx)
                _check(page.data == [], rule_name, f"cursor {hostile!r} is not exclusive")
            _check(
                await h.store.load_thread("axb", ctx) == decoy,
                "hostile-ids-are-data",
                "'a_b' matched 'axb' like a wildcard",
            )
            count = len((await h.store.load_threads(100, None, "asc", ctx)).data)
            _check(
                count == len(strategies.HOSTILE_IDS) + 1,
                "hostile-ids-are-data",
                f"{count} threads listed",
            )

        self._scenario("hostile-ids-are-data", check)

    @_rule("unstorable-ids")
    def test_unstorable_ids(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            for bad in ("nul\x00id", "x" * (MAX_ID_LENGTH + 1)):
                shown = repr(bad[:20])
                _check(
                    await _raises(
                        h.store.save_thread(ThreadMetadata(id=bad, created_at=_T0), ctx), ValueError
                    ),
                    "unstorable-ids",
                    f"save_thread accepted id {shown}",
                )
                _check(
                    await _raises(
                        h.store.add_thread_item("thr", _assistant(bad, "thr", _T0), ctx), ValueError
                    ),
                    "unstorable-ids",
                    f"add_thread_item accepted item id {shown}",
                )
                _check(
                    await _raises(
                        h.store.save_attachment(
                            FileAttachment(id=bad, name="n", mime_type="text/plain"), ctx
                        ),
                        ValueError,
                    ),
                    "unstorable-ids",
                    f"save_attachment accepted id {shown}",
                )
                _check(
                    await _raises_not_found(h.store.load_attachment(bad, ctx)) is not None,
                    "unstorable-ids",
                    f"load_attachment({shown}) did not raise NotFoundError",
                )
            threads = await h.store.load_threads(10, None, "asc", ctx)
            _check(threads.data == [], "unstorable-ids", "a rejected thread was stored")

        self._scenario("unstorable-ids", check)

    @_rule("id-generation")
    def test_id_generation(self) -> None:
        async def check(h: _Harness) -> None:
            ctx = h.context()
            thread = ThreadMetadata(id="thr", created_at=_T0)
            ids = {h.store.generate_thread_id(ctx) for _ in range(200)}
            ids |= {h.store.generate_item_id("message", thread, ctx) for _ in range(200)}
            _check(len(ids) == 400, "id-generation", f"only {len(ids)} distinct ids of 400")
            _check(
                all(
                    isinstance(i, str) and 0 < len(i) <= MAX_ID_LENGTH and "\x00" not in i
                    for i in ids
                ),
                "id-generation",
                "generated an unstorable id",
            )

        self._scenario("id-generation", check)

    # Everything at once

    @_rule("stateful-model")
    def test_stateful_against_reference_model(self) -> None:
        def scenario(h: _Harness) -> None:
            machine = _machine_for(h)
            run_state_machine_as_test(machine, settings=h.stateful_settings)

        self._run("stateful-model", scenario)


_THREAD_IDS = st.sampled_from(["t1", "t'%_\\"])
_ITEM_IDS = st.sampled_from(["i1", "i2", "i3", "i_%"])
_ATTACHMENT_IDS = st.sampled_from(["a1", "a2"])
_STAMPS = st.sampled_from(
    [
        datetime(2026, 3, 1, 12, 0, 0, 500),
        datetime(2026, 3, 1, 12, 0, 0, 500),
        datetime(2026, 3, 1, 12, 0, 0, 501),
        datetime(2026, 3, 1, 9, 0, 0, tzinfo=timezone(timedelta(hours=-3))),
        datetime(2026, 3, 1, 11, 0, 0, tzinfo=timezone.utc),
    ]
)
# Cheap item types keep generation and shrinking fast; item-round-trip covers every type.
_STATEFUL_ITEMS = st.one_of(
    st.builds(_assistant, _ITEM_IDS, _THREAD_IDS, _STAMPS, st.text(max_size=5)),
    st.builds(_user_message, _ITEM_IDS, _THREAD_IDS, _STAMPS, st.text(max_size=5)),
    strategies.hidden_context_items(_ITEM_IDS, _STAMPS),
    strategies.end_of_turn_items(_ITEM_IDS, _STAMPS),
)
_OWNERS = st.integers(0, 1)
_LIMITS = st.integers(1, 3)
_ORDERS = st.sampled_from(["asc", "desc"])


def _machine_for(h: _Harness) -> type[RuleBasedStateMachine]:
    """A state machine class bound to this test's store and loop."""

    class StoreMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.model = ReferenceModel()
            self.contexts = [h.context(), h.context()]

        def fail(self, detail: str) -> None:
            raise ConformanceFailure("stateful-model", detail)

        def _walk(
            self,
            load: Callable[[str | None, int], Awaitable[Page[Any]]],
            rows: Any,
            limit: int,
            order: str,
        ) -> None:
            expected = expected_page(rows, None, 10_000, order)
            assert expected is not None
            got = h.run(_walk(load, limit, "stateful-model", len(rows) + 2))
            if got != expected.data:
                self.fail(
                    f"{order} walk (limit {limit}) gave {_ids(got)}, model {_ids(expected.data)}"
                )

        @rule(owner=_OWNERS, thread=strategies.thread_metadata(_THREAD_IDS, _STAMPS))
        def save_thread(self, owner: int, thread: ThreadMetadata) -> None:
            h.run(h.store.save_thread(thread, self.contexts[owner]))
            self.model.save_thread(str(owner), thread)

        @rule(owner=_OWNERS, thread_id=_THREAD_IDS)
        def load_thread(self, owner: int, thread_id: str) -> None:
            expected = self.model.load_thread(str(owner), thread_id)
            try:
                got = h.run(h.store.load_thread(thread_id, self.contexts[owner]))
            except NotFoundError:
                if expected is not None:
                    self.fail(f"load_thread({thread_id!r}) raised NotFoundError; model has it")
                return
            if got != expected:
                self.fail(f"load_thread({thread_id!r}) gave {got!r}, model {expected!r}")

        @rule(owner=_OWNERS, limit=_LIMITS, order=_ORDERS)
        def load_threads(self, owner: int, limit: int, order: str) -> None:
            ctx = self.contexts[owner]
            self._walk(
                lambda after, n: h.store.load_threads(n, after, order, ctx),
                self.model.thread_rows(str(owner)),
                limit,
                order,
            )

        @rule(owner=_OWNERS, thread_id=_THREAD_IDS)
        def delete_thread(self, owner: int, thread_id: str) -> None:
            h.run(h.store.delete_thread(thread_id, self.contexts[owner]))
            self.model.delete_thread(str(owner), thread_id)

        @rule(
            owner=_OWNERS,
            thread_id=_THREAD_IDS,
            items=st.lists(_STATEFUL_ITEMS, min_size=1, max_size=4),
            replace=st.booleans(),
        )
        def write_items(
            self, owner: int, thread_id: str, items: list[ThreadItem], replace: bool
        ) -> None:
            write = h.store.save_item if replace else h.store.add_thread_item
            for item in items:
                h.run(write(thread_id, item, self.contexts[owner]))
                self.model.upsert_item(str(owner), thread_id, item)

        @rule(owner=_OWNERS, thread_id=_THREAD_IDS, item_id=_ITEM_IDS)
        def load_item(self, owner: int, thread_id: str, item_id: str) -> None:
            expected = self.model.load_item(str(owner), thread_id, item_id)
            try:
                got = h.run(h.store.load_item(thread_id, item_id, self.contexts[owner]))
            except NotFoundError:
                if expected is not None:
                    self.fail(f"load_item({thread_id!r}, {item_id!r}) raised; model has it")
                return
            if got != expected:
                self.fail(f"load_item({thread_id!r}, {item_id!r}) gave {got!r}, model {expected!r}")

        @rule(owner=_OWNERS, thread_id=_THREAD_IDS, item_id=_ITEM_IDS)
        def delete_thread_item(self, owner: int, thread_id: str, item_id: str) -> None:
            h.run(h.store.delete_thread_item(thread_id, item_id, self.contexts[owner]))
            self.model.delete_item(str(owner), thread_id, item_id)

        @rule(owner=_OWNERS, thread_id=_THREAD_IDS, limit=_LIMITS, order=_ORDERS)
        def load_thread_items(self, owner: int, thread_id: str, limit: int, order: str) -> None:
            ctx = self.contexts[owner]
            self._walk(
                lambda after, n: h.store.load_thread_items(thread_id, after, n, order, ctx),
                self.model.item_rows(str(owner), thread_id),
                limit,
                order,
            )

        @rule(owner=_OWNERS, thread_id=_THREAD_IDS, after=_ITEM_IDS, limit=_LIMITS, order=_ORDERS)
        def load_page_after(
            self, owner: int, thread_id: str, after: str, limit: int, order: str
        ) -> None:
            expected = expected_page(
                self.model.item_rows(str(owner), thread_id), after, limit, order
            )
            try:
                got = h.run(
                    h.store.load_thread_items(thread_id, after, limit, order, self.contexts[owner])
                )
            except NotFoundError:
                if expected is not None:
                    self.fail(f"page after {after!r} raised NotFoundError; the model has that row")
                return
            if expected is None:
                self.fail(f"page after unknown cursor {after!r} returned {_ids(got.data)}")
            elif (got.data, got.has_more, got.after) != (
                expected.data,
                expected.has_more,
                expected.after,
            ):
                self.fail(
                    f"{order} page after {after!r} limit {limit}: {_ids(got.data)} "
                    f"has_more={got.has_more} after={got.after!r}; model {_ids(expected.data)} "
                    f"has_more={expected.has_more} after={expected.after!r}"
                )

        @rule(owner=_OWNERS, attachment=strategies.attachments(_ATTACHMENT_IDS))
        def save_attachment(self, owner: int, attachment: Any) -> None:
            h.run(h.store.save_attachment(attachment, self.contexts[owner]))
            self.model.attachments[(str(owner), attachment.id)] = attachment.model_copy(deep=True)

        @rule(owner=_OWNERS, attachment_id=_ATTACHMENT_IDS)
        def load_attachment(self, owner: int, attachment_id: str) -> None:
            expected = self.model.attachments.get((str(owner), attachment_id))
            try:
                got = h.run(h.store.load_attachment(attachment_id, self.contexts[owner]))
            except NotFoundError:
                if expected is not None:
                    self.fail(f"load_attachment({attachment_id!r}) raised; model has it")
                return
            if got != expected:
                self.fail(f"load_attachment({attachment_id!r}) gave {got!r}, model {expected!r}")

        @rule(owner=_OWNERS, attachment_id=_ATTACHMENT_IDS)
        def delete_attachment(self, owner: int, attachment_id: str) -> None:
            h.run(h.store.delete_attachment(attachment_id, self.contexts[owner]))
            self.model.attachments.pop((str(owner), attachment_id), None)

        @invariant()
        def thread_lists_match(self) -> None:
            for owner, ctx in enumerate(self.contexts):
                expected = expected_page(self.model.thread_rows(str(owner)), None, 1000, "desc")
                assert expected is not None
                got = h.run(h.store.load_threads(1000, None, "desc", ctx))
                if got.data != expected.data:
                    self.fail(
                        f"owner {owner} threads {_ids(got.data)}, model {_ids(expected.data)}"
                    )

    return StoreMachine


# Programmatic runs


@dataclass
class ConformanceReport:
    """What passed and what failed when a store was run through every rule."""

    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed_rules(self) -> set[str]:
        return set(self.failed)

    def __str__(self) -> str:
        lines = [f"{'rule':32} result"]
        lines += [f"{name:32} passed" for name in self.passed]
        lines += [
            f"{name:32} FAILED {message.splitlines()[0]}" for name, message in self.failed.items()
        ]
        return "\n".join(lines)


def _test_methods() -> Iterator[tuple[str, str]]:
    for name, member in vars(StoreConformance).items():
        if name.startswith("test_") and callable(member):
            yield name, member.__conformance_rule__


def run_conformance(
    make_store: Callable[[], Store[Any] | Awaitable[Store[Any]]],
    *,
    make_context: Callable[[str], Any] | None = None,
    teardown_store: Callable[[Any], Awaitable[None] | None] | None = None,
    profile: str = "ci",
    rules: set[str] | None = None,
) -> ConformanceReport:
    """Run the conformance suite outside pytest and report every rule's result.

    The failure of a test is reported under the rule it names (a test can catch a rule other
    than its own, e.g. a round-trip test catching `datetimes-exact`).
    """

    class Suite(StoreConformance):
        conformance_profile = profile

        def make_store(self) -> Store[Any] | Awaitable[Store[Any]]:
            return make_store()

        def teardown_store(self, store: Any) -> Awaitable[None] | None:
            return None if teardown_store is None else teardown_store(store)

        def make_context(self, user_id: str) -> Any:
            if make_context is None:
                return super().make_context(user_id)
            return make_context(user_id)

    report = ConformanceReport()
    suite = Suite()
    for method_name, rule_name in _test_methods():
        if rules is not None and rule_name not in rules:
            continue
        try:
            getattr(suite, method_name)()
        except ConformanceFailure as failure:
            report.failed.setdefault(failure.rule, str(failure))
        else:
            report.passed.append(rule_name)
    return report
