"""The contract tier: only behaviour that `ChatKitServer` or the ChatKit client relies on.

Every scenario saves a thread before writing items into it, and every item carries the id of the
thread it is written to, as the server does. No rule here touches attachments unless it is about
attachments (and then it needs the `attachments` capability).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    FileAttachment,
    HiddenContextItem,
    ImageAttachment,
    LockedStatus,
    Page,
    SDKHiddenContextItem,
    Thread,
    ThreadItem,
    ThreadMetadata,
)
from hypothesis import strategies as st

from ...stores import MAX_ID_BYTES
from .. import strategies
from .._model import ReferenceModel, listing_problem
from ._capabilities import ATTACHMENTS, ITEM_WRITES
from ._harness import Harness, SuiteBase, rule
from ._loop_hold import LoopHold, LoopThreadClock
from ._stateful import run_machine
from ._values import (
    T0,
    as_utc,
    assistant,
    check_json_values,
    difference,
    ids,
    raises_not_found,
    row_difference,
    short,
    thread,
    user_message,
    walk,
)

_SHORT_HOSTILE_IDS = tuple(i for i in strategies.HOSTILE_IDS if len(i) <= 64)
_STATEFUL_RELIES_ON = (
    "thread-round-trip",
    "thread-upsert",
    "threads-pagination",
    "item-round-trip",
    "items-ordered-by-created-at",
    "exclusive-cursor",
    "has-more-needs-cursor",
    "ties-stable-order",
    "unknown-cursor",
    "add-item-idempotent",
    "save-item-upsert",
    "item-not-found",
    "unknown-thread-empty-page",
    "unknown-thread-creates-nothing",
    "delete-thread-cascades",
    "delete-thread-item",
    "deletes-are-idempotent",
    "owner-isolation",
    "same-id-two-rows",
    "upsert-never-moves",
    "returned-copies",
    "attachment-round-trip",
    "attachment-owner-isolation",
)
"""The random-sequence test exercises these rules' behaviours again, in combinations: while one
of them failed, its failures would repeat that cause under `stateful-model`."""


async def _seed(h: Harness, ctx: Any, thread_id: str, items: list[ThreadItem]) -> None:
    """Save the thread, then add its items (what the server does)."""
    await h.store.save_thread(thread(thread_id), ctx)
    for item in items:
        await h.store.add_thread_item(thread_id, item, ctx)


async def _listing(h: Harness, ctx: Any, thread_id: str, order: str) -> list[Any]:
    return await walk(
        h, lambda after, n: h.store.load_thread_items(thread_id, after, n, order, ctx), 50, 10_000
    )


async def _check_item_listing(
    h: Harness, ctx: Any, model: ReferenceModel, thread_id: str, after: str
) -> None:
    """Thread `thread_id` of owner 'o' lists as `model` says, in both orders, after the write
    `after`."""
    for order in ("asc", "desc"):
        problem = listing_problem(
            await _listing(h, ctx, thread_id, order),
            model.item_rows("o", thread_id),
            order,
            insertion_order=True,
        )
        h.check(
            problem is None,
            f"load_thread_items({thread_id!r}, ..., {order!r}) after {after}: {problem}",
        )


async def _check_unknown_cursor_page(h: Harness, load: Any, what: str) -> None:
    """An unknown cursor: NotFoundError, or an empty page without has_more; never a restart."""
    try:
        page: Page[Any] = await load
    except NotFoundError:
        return
    h.check(
        page.data == [] and not page.has_more,
        f"{what} returned {short(ids(page.data))} (has_more={page.has_more}): an unknown "
        "cursor must raise NotFoundError or give an empty page, never start over or resolve "
        "outside the collection (the client would show duplicates or another thread's rows)",
    )


class ContractRules(SuiteBase):
    """Rules of the ChatKit store contract (the default tier)."""

    # Threads

    @rule(
        "thread-round-trip",
        "load_thread returns the saved ThreadMetadata, field for field",
        protects="threads.get_by_id and threads.update return what was saved; status, title, "
        "allowed_image_domains and metadata survive",
        depends=("owner-isolation",),
    )
    def test_thread_round_trip(self, h: Harness) -> None:
        @h.examples(strategies.thread_metadata(timestamps=strategies.server_created_at))
        async def check(saved: ThreadMetadata) -> None:
            ctx = h.context()
            # The generated id's characters, unique to this example (no id shared between
            # examples: another owner's rows are the business of owner-isolation).
            saved = saved.model_copy(update={"id": h.fresh_like(saved.id)})
            await h.store.save_thread(saved, ctx)
            loaded = await h.store.load_thread(saved.id, ctx)
            problem = row_difference(saved, loaded)
            h.check(
                problem is None,
                f"load_thread({short(saved.id, 40)}) after save_thread: {problem}",
            )

        # Every run, whatever the draws: a title with quotes and markup comes back as is.
        (tid,) = h.names("thr")
        saved = ThreadMetadata(
            id=tid, created_at=T0, title='it\'s "quoted" <b>&amp; 100%_</b>', metadata={"k": 1}
        )
        ctx = h.context()
        h.run(h.store.save_thread(saved, ctx))
        problem = row_difference(saved, h.run(h.store.load_thread(tid, ctx)))
        h.check(problem is None, f"load_thread({tid!r}) after save_thread: {problem}")

    @rule(
        "thread-upsert",
        "save_thread of an existing id replaces it (no duplicate, no error)",
        protects="threads.update and _process_events save the same thread again and again",
        depends=("owner-isolation",),  # it lists the owner's threads
    )
    async def test_thread_upsert(self, h: Harness) -> None:
        ctx = h.context()
        thr_1, thr_0 = h.names("thr_1", "thr_0")
        await h.store.save_thread(thread(thr_1, title="first"), ctx)
        await h.store.save_thread(thread(thr_0, T0 - timedelta(seconds=1)), ctx)
        updated = ThreadMetadata(
            id=thr_1,
            created_at=T0 + timedelta(seconds=5),
            title="second",
            status=LockedStatus(reason="done"),
            metadata={"k": [1, "v"]},
        )
        await h.store.save_thread(updated, ctx)
        # The server never changes a thread's created_at: keeping the first one is fine.
        loaded = await h.store.load_thread(thr_1, ctx)
        problem = row_difference(updated, loaded, created_at_choices=(T0,))
        h.check(problem is None, f"load_thread({thr_1!r}) after the upsert: {problem}")
        for order in ("asc", "desc"):
            page = await h.store.load_threads(10, None, order, ctx)
            h.check(
                sorted(ids(page.data)) == sorted([thr_0, thr_1]),
                f"load_threads(10, None, {order!r}) after the upsert lists {ids(page.data)}, "
                f"expected {thr_0} and {thr_1} once each",
            )
            problem = row_difference(
                updated, page.data[ids(page.data).index(thr_1)], created_at_choices=(T0,)
            )
            h.check(problem is None, f"load_threads(10, None, {order!r}): {problem}")

    @rule(
        "thread-not-found",
        "load_thread of a missing id raises NotFoundError",
        protects="the server lets NotFoundError propagate (HTTP 404 / a failed stream)",
        depends=(),
    )
    async def test_thread_not_found(self, h: Harness) -> None:
        ctx = h.context()
        tid, missing = h.names("thr_1", "thr_missing")
        await h.store.save_thread(thread(tid), ctx)
        for wrong in (missing, tid.upper(), tid + " "):
            exc = await raises_not_found(h.store.load_thread(wrong, ctx))
            h.check(
                exc is not None,
                f"load_thread({wrong!r}) did not raise NotFoundError (only {tid!r} was saved)",
            )

    @rule(
        "threads-pagination",
        "load_threads pages threads by created_at with the same cursor rules as items",
        protects="threads.list (the client's thread history) pages with after/has_more",
        depends=("owner-isolation", "exclusive-cursor", "has-more-needs-cursor"),
    )
    async def test_threads_pagination(self, h: Harness) -> None:
        ctx = h.context()
        t1, t2, t3 = h.names("thread1", "thread2", "thread3")
        for offset, thread_id in ((1, t2), (2, t3), (0, t1)):
            await h.store.save_thread(thread(thread_id, T0 + timedelta(seconds=offset)), ctx)
        page1 = await h.store.load_threads(2, None, "asc", ctx)
        h.check(
            (ids(page1.data), page1.has_more, page1.after) == ([t1, t2], True, t2),
            f"load_threads(2, None, 'asc') gave {ids(page1.data)} has_more={page1.has_more} "
            f"after={page1.after!r}; expected {[t1, t2]} has_more=True after={t2!r}",
        )
        page2 = await h.store.load_threads(2, t2, "asc", ctx)
        h.check(
            ids(page2.data) == [t3] and not page2.has_more,
            f"load_threads(2, {t2!r}, 'asc') gave {ids(page2.data)} "
            f"has_more={page2.has_more} after={page2.after!r}; expected {[t3]} has_more=False",
        )
        desc = await h.store.load_threads(10, None, "desc", ctx)
        h.check(
            ids(desc.data) == [t3, t2, t1],
            f"load_threads(10, None, 'desc') gave {ids(desc.data)}; expected {[t3, t2, t1]}",
        )
        after = await h.store.load_threads(1, t2, "desc", ctx)
        h.check(
            ids(after.data) == [t1],
            f"load_threads(1, {t2!r}, 'desc') gave {ids(after.data)} "
            f"after={after.after!r}; expected {[t1]}",
        )

    # Items

    @rule(
        "item-round-trip",
        "every ThreadItem type and every widget root kind comes back equal from load_item and "
        "load_thread_items",
        protects="the server compares stored items with streamed ones (==) and sends them "
        "to the client; template widgets must stay DynamicWidgetRoot",
        needs=(ITEM_WRITES,),
        depends=("owner-isolation", "same-id-two-rows"),
    )
    def test_item_round_trip(self, h: Harness) -> None:
        kinds = strategies.item_kinds()
        # Coverage by construction: every kind gets its own share of the examples.
        per_kind = max(2, h.profile["max_examples"] // len(kinds))
        for kind, make in kinds.items():

            @h.examples(make(timestamps=strategies.server_created_at), max_examples=per_kind)
            async def check(item: ThreadItem) -> None:
                ctx = h.context()
                fresh = {"id": h.fresh_like(item.id), "thread_id": h.fresh_like(item.thread_id)}
                item = item.model_copy(update=fresh)
                await _seed(h, ctx, item.thread_id, [item])
                shown = f"({short(item.thread_id, 30)}, {short(item.id, 30)})"
                loaded = await h.store.load_item(item.thread_id, item.id, ctx)
                problem = row_difference(item, loaded)
                h.check(problem is None, f"{kind}: load_item{shown}: {problem}")  # noqa: B023
                page = await h.store.load_thread_items(item.thread_id, None, 5, "asc", ctx)
                h.check(
                    ids(page.data) == [item.id],
                    f"{kind}: load_thread_items({short(item.thread_id, 30)}) lists "  # noqa: B023
                    f"{short(ids(page.data))}, expected [{short(item.id, 30)}]",
                )
                problem = row_difference(item, page.data[0])
                h.check(
                    problem is None,
                    f"{kind}: load_thread_items({short(item.thread_id, 30)}): {problem}",  # noqa: B023
                )

    @rule(
        "items-ordered-by-created-at",
        "items added in created_at order (as the server adds them) list in that order, never by id",
        protects="the client shows a thread oldest to newest; ids (msg_...) are random",
        needs=(ITEM_WRITES,),
        depends=(),
    )
    async def test_items_ordered_by_created_at(self, h: Harness) -> None:
        ctx = h.context()
        # Lexical id order differs from time order on purpose; insertion order is time order
        # (a store ordering by insertion is fair: the strict tier checks created_at alone).
        tid, *fresh = h.names(
            "thr_1", "msg_100000", "msg_000001", "msg_050000", "msg_999999", "msg_000000"
        )
        names = list(fresh)  # one suffix: the lexical order of the names is kept
        items = [assistant(name, tid, T0 + timedelta(seconds=i)) for i, name in enumerate(names)]
        await _seed(h, ctx, tid, items)
        asc = await h.store.load_thread_items(tid, None, 10, "asc", ctx)
        desc = await h.store.load_thread_items(tid, None, 3, "desc", ctx)
        h.check(
            ids(asc.data) == names,
            f"load_thread_items({tid!r}, None, 10, 'asc') gave {ids(asc.data)}; expected {names}",
        )
        h.check(
            ids(desc.data) == names[::-1][:3],
            f"load_thread_items({tid!r}, None, 3, 'desc') gave {ids(desc.data)}; expected "
            f"{names[::-1][:3]}",
        )

    @rule(
        "exclusive-cursor",
        "`after` is exclusive: a page starts strictly after the cursor row, in both orders",
        protects="items.list and _paginate_thread_items_reverse continue from page.after",
        needs=(ITEM_WRITES,),
        depends=("has-more-needs-cursor",),
    )
    async def test_exclusive_cursor(self, h: Harness) -> None:
        ctx = h.context()
        tid, *msg = h.names("thr_1", "msg0", "msg1", "msg2", "msg3", "msg4")
        await _seed(
            h, ctx, tid, [assistant(msg[i], tid, T0 + timedelta(seconds=i)) for i in range(5)]
        )
        cases: list[tuple[str | None, int, str, list[str], bool]] = [
            (msg[1], 3, "asc", [msg[2], msg[3], msg[4]], False),  # an exact fit
            (None, 2, "asc", [msg[0], msg[1]], True),
            (msg[3], 2, "desc", [msg[2], msg[1]], True),
            (msg[0], 2, "desc", [], False),
        ]
        for after, limit, order, expected, more in cases:
            page = await h.store.load_thread_items(tid, after, limit, order, ctx)
            cursor = expected[-1] if more else None
            # `after` on the last page is ignored by the server, so any value is accepted.
            h.check(
                ids(page.data) == expected
                and page.has_more == more
                and (not more or page.after == cursor),
                f"load_thread_items({tid!r}, {after!r}, {limit}, {order!r}) gave "
                f"{ids(page.data)} has_more={page.has_more} after={page.after!r}; expected "
                f"{expected} has_more={more}" + (f" after={cursor!r}" if more else ""),
            )

    @rule(
        "has-more-needs-cursor",
        "has_more=True comes with after=<id of the page's last row>; an exact fit has "
        "has_more=False; every page walk lists every row once, in order",
        protects="_paginate_thread_items_reverse loops `while has_more: after = page.after`; "
        "a missing cursor restarts the walk forever",
        needs=(ITEM_WRITES,),
        depends=("owner-isolation", "exclusive-cursor"),
    )
    def test_has_more_needs_cursor(self, h: Harness) -> None:
        @h.examples(
            # Distinct stamps: ties have a rule of their own (ties-stable-order).
            st.lists(strategies.server_created_at, min_size=0, max_size=9, unique=True),
            st.integers(1, 4),
            st.sampled_from(["asc", "desc"]),
        )
        async def check(stamps: list[datetime], limit: int, order: str) -> None:
            ctx = h.context()
            model = ReferenceModel()
            tid = h.fresh_id("thr")
            await h.store.save_thread(thread(tid), ctx)
            model.save_thread("o", thread(tid))
            # Items in time order, as the server adds them; threads in any order.
            for i, stamp in enumerate(sorted(stamps)):
                item = assistant(f"{tid}_i{i}", tid, stamp)
                await h.store.add_thread_item(tid, item, ctx)
                model.upsert_item("o", tid, item)
            for i, stamp in enumerate(stamps):
                await h.store.save_thread(thread(f"{tid}_{i}", stamp), ctx)
                model.save_thread("o", thread(f"{tid}_{i}", stamp))
            shown = f"load_thread_items({tid!r}, after, {limit}, {order!r})"
            got = await walk(
                h,
                lambda after, n: h.store.load_thread_items(tid, after, n, order, ctx),
                limit,
                len(stamps) + 2,
                shown,
            )
            problem = listing_problem(got, model.item_rows("o", tid), order, insertion_order=True)
            h.check(problem is None, f"{shown} walk of {len(stamps)} items: {problem}")
            shown = f"load_threads({limit}, after, {order!r})"
            threads = await walk(
                h,
                lambda after, n: h.store.load_threads(n, after, order, ctx),
                limit,
                len(stamps) + 3,
                shown,
            )
            problem = listing_problem(threads, model.thread_rows("o"), order)
            h.check(problem is None, f"{shown} walk of {len(stamps) + 1} threads: {problem}")

    @rule(
        "ties-stable-order",
        "rows sharing a created_at have one stable order: every page size walks the same "
        "sequence, desc is the exact reverse of asc, a page boundary inside a tie skips or "
        "repeats nothing",
        protects="items created within one clock tick must neither vanish nor repeat between pages",
        needs=(ITEM_WRITES,),
        depends=("exclusive-cursor", "has-more-needs-cursor"),
    )
    def test_ties_stable_order(self, h: Harness) -> None:
        @h.examples(
            st.lists(st.sampled_from([T0, T0, T0 + timedelta(microseconds=1)]), max_size=10),
            st.integers(1, 3),
        )
        async def check(stamps: list[datetime], limit: int) -> None:
            ctx = h.context()
            tid = h.fresh_id("thr")
            # In time order, as the server adds them; the ties are what this rule is about.
            items = [assistant(f"{tid}_m{i}", tid, stamp) for i, stamp in enumerate(sorted(stamps))]
            await _seed(h, ctx, tid, items)
            model = ReferenceModel()
            for item in items:
                model.upsert_item("o", tid, item)
            walks = {}
            for order in ("asc", "desc"):
                shown = f"load_thread_items({tid!r}, after, {limit}, {order!r})"
                got = await walk(
                    h,
                    lambda after, n: h.store.load_thread_items(tid, after, n, order, ctx),  # noqa: B023
                    limit,
                    len(items) + 2,
                    shown,
                )
                problem = listing_problem(
                    got, model.item_rows("o", tid), order, insertion_order=True
                )
                h.check(problem is None, f"{shown} walk of {len(items)} items: {problem}")
                whole = await h.store.load_thread_items(tid, None, 100, order, ctx)
                h.check(
                    ids(got) == ids(whole.data),
                    f"{shown} walk gave {ids(got)}; load_thread_items({tid!r}, None, 100, "
                    f"{order!r}) gave {ids(whole.data)}",
                )
                walks[order] = ids(got)
            h.check(
                walks["desc"] == walks["asc"][::-1],
                f"the desc walk {walks['desc']} is not the reverse of the asc walk "
                f"{walks['asc']} ({tid!r}, limit {limit})",
            )

    @rule(
        "unknown-cursor",
        "an `after` naming no row of that collection (a missing id, another thread's or "
        "another owner's row) raises NotFoundError or gives an empty page without has_more",
        protects="a cursor that restarts the listing makes the client show duplicates",
        needs=(ITEM_WRITES,),
        depends=("owner-isolation", "same-id-two-rows"),
    )
    async def test_unknown_cursor(self, h: Harness) -> None:
        alice, bob = h.context(), h.context()
        # Ids reused under another owner on purpose, fresh to this run.
        thr_1, thr_2, *msg, other, bobs, missing, thr_missing = h.names(
            "thr_1",
            "thr_2",
            "msg_0",
            "msg_1",
            "msg_2",
            "msg_other",
            "msg_bob",
            "msg_missing",
            "thr_missing",
        )
        stamps = [T0 + timedelta(seconds=2 * i) for i in range(3)]
        await _seed(h, alice, thr_1, [assistant(msg[i], thr_1, stamps[i]) for i in range(3)])
        # Foreign rows sit in the middle of thr_1's timeline: a cursor resolved outside the
        # thread (or the owner) gives a non-empty page in both orders.
        middle = T0 + timedelta(seconds=3)
        await _seed(h, alice, thr_2, [assistant(other, thr_2, middle)])
        await _seed(h, bob, thr_1, [assistant(bobs, thr_1, middle)])
        whose = {missing: "no row", other: "another thread's item", bobs: "another owner's item"}
        for order in ("asc", "desc"):
            for cursor, what in whose.items():
                await _check_unknown_cursor_page(
                    h,
                    h.store.load_thread_items(thr_1, cursor, 2, order, alice),
                    f"load_thread_items({thr_1!r}, {cursor!r} ({what}), 2, {order!r})",
                )
            await _check_unknown_cursor_page(
                h,
                h.store.load_threads(1, thr_missing, order, alice),
                f"load_threads(1, {thr_missing!r}, {order!r})",
            )

    @rule(
        "hidden-item-cursor",
        "hidden context items can be page cursors",
        protects="items.list filters hidden items after the store call, so page.after can be "
        "a hidden item's id",
        needs=(ITEM_WRITES,),
        depends=("exclusive-cursor",),
        relies_on=("items-ordered-by-created-at",),
    )
    async def test_hidden_item_cursor(self, h: Harness) -> None:
        ctx = h.context()
        tid, m0, h1, h2, m3 = h.names("thr", "m0", "h1", "h2", "m3")
        items: list[ThreadItem] = [
            user_message(m0, tid, T0),
            HiddenContextItem(id=h1, thread_id=tid, created_at=T0 + timedelta(1), content={"a": 1}),
            SDKHiddenContextItem(id=h2, thread_id=tid, created_at=T0 + timedelta(2), content="x"),
            assistant(m3, tid, T0 + timedelta(3)),
        ]
        await _seed(h, ctx, tid, items)
        for after, order, expected in ((h2, "desc", [h1, m0]), (h1, "asc", [h2, m3])):
            page = await h.store.load_thread_items(tid, after, 5, order, ctx)
            h.check(
                ids(page.data) == expected,
                f"load_thread_items({tid!r}, {after!r}, 5, {order!r}) gave {ids(page.data)}; "
                f"expected {expected}",
            )

    @rule(
        "add-item-idempotent",
        "add_thread_item of an existing id stores the new payload once (kept in place or "
        "re-sorted by its new created_at)",
        protects="open workflows and Chat Completions' `__fake_id__` messages are added twice",
        needs=(ITEM_WRITES,),
        depends=(),
    )
    async def test_add_item_idempotent(self, h: Harness) -> None:
        ctx = h.context()
        tid, *m = h.names("thr", "m0", "m1", "m2")
        first = [assistant(m[i], tid, T0 + timedelta(seconds=i)) for i in range(3)]
        await _seed(h, ctx, tid, first)
        model = ReferenceModel()
        for item in first:
            model.upsert_item("o", tid, item)
        again = assistant(m[0], tid, T0 + timedelta(seconds=10), text="second version")
        await h.store.add_thread_item(tid, again, ctx)
        model.upsert_item("o", tid, again)
        await _check_item_listing(
            h, ctx, model, tid, f"add_thread_item({tid!r}, {m[0]}) of an existing {m[0]}"
        )
        loaded = await h.store.load_item(tid, m[0], ctx)
        problem = row_difference(again, loaded)
        h.check(problem is None, f"load_item({tid!r}, {m[0]!r}) after adding it again: {problem}")

    @rule(
        "save-item-upsert",
        "save_item inserts a missing item and replaces an existing one, even with another "
        "item type, without duplicating it",
        protects="ThreadItemReplacedEvent and add_client_tool_output call save_item",
        needs=(ITEM_WRITES,),
        depends=(),
    )
    async def test_save_item_upsert(self, h: Harness) -> None:
        ctx = h.context()
        model = ReferenceModel()
        tid, m0, m1 = h.names("thr", "m0", "m1")
        await h.store.save_thread(thread(tid), ctx)
        for item, write in (
            (user_message(m0, tid, T0), h.store.save_item),
            (assistant(m1, tid, T0 + timedelta(1)), h.store.add_thread_item),
            (assistant(m0, tid, T0 + timedelta(5), text="replaced"), h.store.save_item),
        ):
            await write(tid, item, ctx)
            model.upsert_item("o", tid, item)
            await _check_item_listing(h, ctx, model, tid, f"{write.__name__}({tid!r}, {item.id})")
        loaded = await h.store.load_item(tid, m0, ctx)
        problem = row_difference(model.load_item("o", tid, m0), loaded)
        h.check(problem is None, f"load_item({tid!r}, {m0!r}) after save_item: {problem}")

    @rule(
        "item-not-found",
        "load_item of a missing id, or of an id from another thread, raises NotFoundError",
        protects="custom actions and structured input load items by id",
        needs=(ITEM_WRITES,),
        depends=(),
    )
    async def test_item_not_found(self, h: Harness) -> None:
        ctx = h.context()
        thr_1, thr_2, thr_9, m1, missing = h.names("thr_1", "thr_2", "thr_9", "m1", "missing")
        await _seed(h, ctx, thr_1, [assistant(m1, thr_1, T0)])
        await h.store.save_thread(thread(thr_2), ctx)
        for thread_id, item_id in ((thr_1, missing), (thr_2, m1), (thr_9, m1)):
            exc = await raises_not_found(h.store.load_item(thread_id, item_id, ctx))
            h.check(
                exc is not None,
                f"load_item({thread_id!r}, {item_id!r}) did not raise NotFoundError (only {m1} "
                f"of {thr_1} exists)",
            )

    @rule(
        "unknown-thread-empty-page",
        "load_thread_items of an unknown thread (or another owner's) returns an empty page",
        protects="upstream's isolation test expects [] for another user's thread",
        needs=(ITEM_WRITES,),
        depends=("owner-isolation",),
    )
    async def test_unknown_thread_empty_page(self, h: Harness) -> None:
        alice, bob = h.context(), h.context()
        missing, thr_bob, m0 = h.names("thr_missing", "thr_bob", "m0")
        await _seed(h, bob, thr_bob, [assistant(m0, thr_bob, T0)])
        for thread_id in (missing, thr_bob):
            for order in ("asc", "desc"):
                page = await h.store.load_thread_items(thread_id, None, 20, order, alice)
                h.check(
                    page.data == [] and not page.has_more,
                    f"load_thread_items({thread_id!r}, None, 20, {order!r}) gave "
                    f"{short(ids(page.data))} has_more={page.has_more}; expected an empty page",
                )

    @rule(
        "unknown-thread-creates-nothing",
        "reading items of an unknown thread creates nothing: no thread appears for anyone",
        protects="items.list of a stale thread id must not make a phantom thread show up in "
        "threads.list",
        depends=("owner-isolation",),
        relies_on=("unknown-thread-empty-page",),
    )
    async def test_unknown_thread_creates_nothing(self, h: Harness) -> None:
        alice, bob = h.context(), h.context()
        ghost, m0 = h.names("thr_ghost", "m0")
        await h.store.load_thread_items(ghost, None, 20, "desc", alice)
        await raises_not_found(h.store.load_item(ghost, m0, alice))
        await h.store.delete_thread_item(ghost, m0, alice)
        for who, ctx in (("the reader", alice), ("another owner", bob)):
            exc = await raises_not_found(h.store.load_thread(ghost, ctx))
            h.check(exc is not None, f"a thread {ghost!r} now loads for {who}")
            page = await h.store.load_threads(20, None, "desc", ctx)
            h.check(page.data == [], f"threads.list of {who} shows {ids(page.data)}")

    # Deletes

    @rule(
        "delete-thread-cascades",
        "delete_thread removes the thread and all its items, and nothing else",
        protects="threads.delete calls only delete_thread",
        needs=(ITEM_WRITES,),
        depends=(),
    )
    async def test_delete_thread_cascades(self, h: Harness) -> None:
        ctx = h.context()
        thr_1, thr_2, *m = h.names("thr_1", "thr_2", "m0", "m1", "m2", "m9")
        await _seed(h, ctx, thr_1, [assistant(m[i], thr_1, T0) for i in range(3)])
        await _seed(h, ctx, thr_2, [assistant(m[3], thr_2, T0)])
        await h.store.delete_thread(thr_1, ctx)
        h.check(
            await raises_not_found(h.store.load_thread(thr_1, ctx)) is not None,
            f"load_thread({thr_1!r}) after delete_thread({thr_1!r}): the thread still loads",
        )
        h.check(
            await raises_not_found(h.store.load_item(thr_1, m[1], ctx)) is not None,
            f"load_item({thr_1!r}, {m[1]!r}): an item of the deleted thread still loads",
        )
        await h.store.save_thread(thread(thr_1), ctx)
        page = await h.store.load_thread_items(thr_1, None, 10, "asc", ctx)
        h.check(
            page.data == [],
            f"load_thread_items({thr_1!r}) after deleting and saving it again lists "
            f"{ids(page.data)}: items survived the delete",
        )
        other = await h.store.load_thread_items(thr_2, None, 10, "asc", ctx)
        h.check(
            ids(other.data) == [m[3]],
            f"load_thread_items({thr_2!r}) after delete_thread({thr_1!r}) lists "
            f"{ids(other.data)}, expected {[m[3]]}: another thread lost its items",
        )

    @rule(
        "delete-thread-item",
        "delete_thread_item removes exactly that item of that thread",
        protects="ThreadItemRemovedEvent and retry_after_item delete single items",
        needs=(ITEM_WRITES,),
        depends=("same-id-two-rows",),
    )
    async def test_delete_thread_item(self, h: Harness) -> None:
        ctx = h.context()
        thr_1, thr_2, m0, m1, m2 = h.names("thr_1", "thr_2", "m0", "m1", "m2")
        await _seed(h, ctx, thr_1, [assistant(m, thr_1, T0) for m in (m0, m1, m2)])
        await _seed(h, ctx, thr_2, [assistant(m1, thr_2, T0)])  # the same id, another thread
        await h.store.delete_thread_item(thr_1, m1, ctx)
        page = await h.store.load_thread_items(thr_1, None, 10, "asc", ctx)
        h.check(
            sorted(ids(page.data)) == [m0, m2],
            f"load_thread_items({thr_1!r}) after delete_thread_item({thr_1!r}, {m1!r}) lists "
            f"{ids(page.data)}",
        )
        kept = await h.store.load_item(thr_2, m1, ctx)
        h.check(kept.id == m1, f"delete_thread_item({thr_1!r}, {m1!r}) deleted {thr_2}'s {m1}")

    @rule(
        "deletes-are-idempotent",
        "deleting missing threads and items is a silent no-op",
        protects="a guardrail tripwire emits ThreadItemRemovedEvent for items never stored",
        needs=(ITEM_WRITES,),
        depends=(),
    )
    async def test_deletes_are_idempotent(self, h: Harness) -> None:
        ctx = h.context()
        thr_1, missing_thread, m0, missing = h.names("thr_1", "thr_missing", "m0", "missing")
        await _seed(h, ctx, thr_1, [assistant(m0, thr_1, T0)])
        for _ in range(2):
            await h.store.delete_thread(missing_thread, ctx)
            await h.store.delete_thread_item(thr_1, missing, ctx)
            await h.store.delete_thread_item(missing_thread, m0, ctx)
        page = await h.store.load_thread_items(thr_1, None, 10, "asc", ctx)
        h.check(
            ids(page.data) == [m0],
            f"load_thread_items({thr_1!r}) after deleting missing threads and items lists "
            f"{ids(page.data)}, expected {[m0]}",
        )

    # Owners and ids

    @rule(
        "owner-isolation",
        "one owner's threads and items are invisible to, and untouched by, every other owner",
        protects="every request is scoped by its context; threads.delete and items.list do "
        "not load the thread first",
        needs=(ITEM_WRITES,),
        depends=("same-id-two-rows",),
        relies_on=("unknown-thread-empty-page", "unknown-thread-creates-nothing"),
    )
    async def test_owner_isolation(self, h: Harness) -> None:
        alice, bob = h.context(), h.context()
        # The same ids under two owners is what this rule is about; fresh to this run.
        tid, m1 = h.names("thr_1", "m1")
        await h.store.save_thread(thread(tid, title="alice"), alice)
        await h.store.add_thread_item(tid, user_message(m1, tid, T0, text="alice's"), alice)
        # What the first owner reads back is the baseline: a store that changes a value on
        # the way breaks a round-trip rule, not this one.
        original = await h.store.load_thread(tid, alice)
        item = await h.store.load_item(tid, m1, alice)
        h.check(
            await raises_not_found(h.store.load_thread(tid, bob)) is not None,
            f"load_thread({tid!r}) of another owner loaded the thread",
        )
        page = await h.store.load_thread_items(tid, None, 10, "desc", bob)
        h.check(
            page.data == [],
            f"load_thread_items({tid!r}) of another owner listed {short(ids(page.data))}",
        )
        h.check(
            await raises_not_found(h.store.load_item(tid, m1, bob)) is not None,
            f"load_item({tid!r}, {m1!r}) of another owner loaded the item",
        )
        threads = await h.store.load_threads(10, None, "desc", bob)
        h.check(
            threads.data == [],
            f"load_threads(10, None, 'desc') of another owner listed {short(ids(threads.data))}",
        )
        # Bob writes and deletes under the same ids: Alice's rows must not change.
        await h.store.save_thread(thread(tid, title="bob"), bob)
        await h.store.add_thread_item(tid, user_message(m1, tid, T0, "bob's"), bob)
        await h.store.save_item(tid, assistant(m1, tid, T0, "bob's"), bob)
        after_bob = f"after another owner wrote {tid!r} and item {m1!r}"
        problem = row_difference(original, await h.store.load_thread(tid, alice))
        h.check(problem is None, f"load_thread({tid!r}) {after_bob}: {problem}")
        problem = row_difference(item, await h.store.load_item(tid, m1, alice))
        h.check(problem is None, f"load_item({tid!r}, {m1!r}) {after_bob}: {problem}")
        bobs = await h.store.load_thread(tid, bob)
        h.check(
            bobs.title != original.title,
            f"load_thread({tid!r}) of the second owner: title {short(bobs.title)}, the first "
            "owner's (equal thread ids under two owners collide)",
        )
        await h.store.delete_thread_item(tid, m1, bob)
        await h.store.delete_thread(tid, bob)
        gone = f"after another owner deleted {tid!r}"
        exc = await raises_not_found(h.store.load_thread(tid, alice))
        h.check(exc is None, f"load_thread({tid!r}) raised NotFoundError {gone}")
        exc = await raises_not_found(h.store.load_item(tid, m1, alice))
        h.check(exc is None, f"load_item({tid!r}, {m1!r}) raised NotFoundError {gone}")
        mine = await h.store.load_threads(10, None, "desc", alice)
        h.check(ids(mine.data) == [tid], f"the first owner's threads {gone}: {ids(mine.data)}")

    @rule(
        "same-id-two-rows",
        "the same item id in two threads, or under two owners, is two separate rows",
        protects="every Chat Completions assistant message has the id `__fake_id__`",
        needs=(ITEM_WRITES,),
        depends=("owner-isolation",),
    )
    async def test_same_id_two_rows(self, h: Harness) -> None:
        alice, bob = h.context(), h.context()
        fake = "__fake_id__"  # reused on purpose: what this rule is about
        thr_1, thr_2 = h.names("thr_1", "thr_2")
        rows = [(alice, thr_1, "one"), (alice, thr_2, "two"), (bob, thr_1, "bob's")]
        for ctx, thread_id, text in rows:
            await _seed(h, ctx, thread_id, [assistant(fake, thread_id, T0, text)])
        for ctx, thread_id, text in rows:
            loaded = await h.store.load_item(thread_id, fake, ctx)
            problem = row_difference(assistant(fake, thread_id, T0, text), loaded)
            h.check(problem is None, f"load_item({thread_id!r}, {fake!r}): {problem}")
            page = await h.store.load_thread_items(thread_id, None, 10, "asc", ctx)
            h.check(ids(page.data) == [fake], f"thread {thread_id!r} lists {ids(page.data)}")
        await h.store.delete_thread_item(thr_1, fake, alice)
        h.check(
            (await h.store.load_item(thr_2, fake, alice)).id == fake
            and (await h.store.load_item(thr_1, fake, bob)).id == fake,
            f"delete_thread_item({thr_1!r}, {fake!r}) deleted its namesakes",
        )

    @rule(
        "upsert-never-moves",
        "add_thread_item/save_item never move an item to another thread or owner",
        protects="a global-id upsert would take a message out of one conversation into another",
        needs=(ITEM_WRITES,),
        depends=("owner-isolation", "same-id-two-rows", "add-item-idempotent"),
    )
    async def test_upsert_never_moves(self, h: Harness) -> None:
        alice, bob = h.context(), h.context()
        thr_1, thr_2, msg_1 = h.names("thr_1", "thr_2", "msg_1")
        item = assistant(msg_1, thr_1, T0, "first thread")
        await _seed(h, alice, thr_1, [item])
        await h.store.save_thread(thread(thr_2), alice)
        await h.store.save_thread(thread(thr_1), bob)
        moved = assistant(msg_1, thr_2, T0 + timedelta(1), "second thread")
        await h.store.save_item(thr_2, moved, alice)
        await h.store.add_thread_item(thr_2, moved, alice)
        await h.store.save_item(thr_1, assistant(msg_1, thr_1, T0, "bob's"), bob)
        for thread_id, expected in ((thr_1, item), (thr_2, moved)):
            page = await h.store.load_thread_items(thread_id, None, 10, "asc", alice)
            shown = f"load_thread_items({thread_id!r}) after {msg_1} was written to {thr_2}"
            h.check(
                ids(page.data) == [msg_1],
                f"{shown} lists {ids(page.data)}, expected {[msg_1]}",
            )
            problem = row_difference(expected, page.data[0])
            h.check(problem is None, f"{shown}: {problem}")

    @rule(
        "hostile-ids-are-data",
        "ids with quotes, wildcards, backslashes and non-ASCII characters are data",
        protects="thread ids come from client requests; item ids from apps and models",
        needs=(ITEM_WRITES,),
        depends=("exclusive-cursor",),
        relies_on=("thread-round-trip",),
    )
    async def test_hostile_ids_are_data(self, h: Harness) -> None:
        ctx = h.context()
        # The hostile characters behind a prefix fresh to this run (the longest id cut to
        # MAX_ID_BYTES): `<prefix>a_b` is still a wildcard matching `<prefix>axb`.
        prefix = uuid.uuid4().hex[:8] + "_"
        hostiles = [_cut(prefix + hostile) for hostile in _SHORT_HOSTILE_IDS]
        decoy = thread(prefix + "axb", title="decoy")
        await h.store.save_thread(decoy, ctx)
        for n, hostile in enumerate(hostiles):
            stamp = T0 + timedelta(seconds=n + 1)
            saved = ThreadMetadata(id=hostile, created_at=stamp, title=f"hostile {n}")
            await h.store.save_thread(saved, ctx)
            item = assistant(hostile, hostile, stamp, text=hostile)
            await h.store.add_thread_item(hostile, item, ctx)
            problem = row_difference(saved, await h.store.load_thread(hostile, ctx))
            h.check(problem is None, f"load_thread({short(hostile)}): {problem}")
            problem = row_difference(item, await h.store.load_item(hostile, hostile, ctx))
            h.check(problem is None, f"load_item({short(hostile)}, {short(hostile)}): {problem}")
            page = await h.store.load_thread_items(hostile, hostile, 5, "desc", ctx)
            h.check(
                page.data == [],
                f"load_thread_items({short(hostile)}, after={short(hostile)}, 5, 'desc') listed "
                f"{short(ids(page.data))}: the cursor is not exclusive",
            )
        problem = row_difference(decoy, await h.store.load_thread(decoy.id, ctx))
        h.check(problem is None, f"load_thread({decoy.id!r}) after saving 'a_b': {problem}")
        # Only this run's rows count (another owner's are owner-isolation's business).
        listed = await h.store.load_threads(100, None, "asc", ctx)
        mine = [i for i in ids(listed.data) if i.startswith(prefix)]
        h.check(
            sorted(mine) == sorted([decoy.id, *hostiles]),
            f"load_threads(100, None, 'asc') listed {len(mine)} of this rule's threads, "
            f"expected {len(hostiles) + 1}, once each",
        )

    @rule(
        "id-generation",
        "generated thread and item ids are unique non-empty strings",
        protects="threads.create and every streamed item take their ids from the store",
        depends=(),
    )
    async def test_id_generation(self, h: Harness) -> None:
        ctx = h.context()
        (tid,) = h.names("thr")
        owner_thread = thread(tid)
        made = [h.store.generate_thread_id(ctx) for _ in range(200)]
        made += [h.store.generate_item_id("message", owner_thread, ctx) for _ in range(200)]
        h.check(all(isinstance(i, str) and i for i in made), "generated a non-string or empty id")
        h.check(len(set(made)) == 400, f"only {len(set(made))} distinct ids of 400")

    # Values

    @rule(
        "datetimes-exact",
        "created_at comes back exactly: naive stays naive, aware keeps its offset, "
        "microseconds kept",
        protects="the server computes datetime.now() - item.created_at (naive) and compares "
        "stored items with streamed ones",
        needs=(ITEM_WRITES,),
        depends=(),
    )
    async def test_datetimes_exact(self, h: Harness) -> None:
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
            # One owner per value: a store never sees naive and aware values side by side
            # (the server creates naive ones only), so one that compares them cannot fail.
            ctx = h.context()
            tid, mid = h.names(f"thr_{i}", f"m{i}")
            await h.store.save_thread(thread(tid, stamp), ctx)
            await h.store.add_thread_item(tid, assistant(mid, tid, stamp), ctx)
            loaded_thread = (await h.store.load_thread(tid, ctx)).created_at
            # A thread's created_at may come back as the same instant in UTC: the server
            # never computes with it.
            h.check(
                as_utc(loaded_thread) == as_utc(stamp),
                f"load_thread({tid!r}): thread created_at expected {stamp!r}, got "
                f"{loaded_thread!r} (another instant)",
            )
            loaded = (await h.store.load_item(tid, mid, ctx)).created_at
            h.check(
                loaded == stamp
                and loaded.utcoffset() == stamp.utcoffset()
                and (loaded.tzinfo is None) == (stamp.tzinfo is None),
                f"load_item({tid!r}, {mid!r}): item created_at expected {stamp!r}, got {loaded!r}",
            )
            if stamp.tzinfo is None:
                try:
                    datetime.now() - loaded
                except TypeError as exc:
                    h.fail(
                        f"load_item({tid!r}, {mid!r}): item created_at {loaded!r}: the server's "
                        f"datetime.now() - item.created_at fails: {exc}"
                    )

    @rule(
        "timestamps-strictly-ordered",
        "items created in a tight loop come back strictly ordered",
        protects="the server stamps items with datetime.now(); upstream's tests walk 25 of them",
        needs=(ITEM_WRITES,),
        depends=("exclusive-cursor", "has-more-needs-cursor"),
    )
    async def test_timestamps_strictly_ordered(self, h: Harness) -> None:
        ctx = h.context()
        (tid,) = h.names("thr")
        await h.store.save_thread(thread(tid), ctx)
        created: list[datetime] = []
        for i in range(25):
            stamp = datetime.now()
            while created and stamp <= created[-1]:
                stamp = datetime.now()
            created.append(stamp)
            await h.store.add_thread_item(tid, assistant(f"{tid}_m{i:02d}", tid, stamp), ctx)
        first = await h.store.load_thread_items(tid, None, 20, "desc", ctx)
        h.check(
            len(first.data) == 20 and first.has_more,
            f"load_thread_items({tid!r}, None, 20, 'desc') of 25 items gave {len(first.data)} "
            f"rows has_more={first.has_more}; expected 20 rows has_more=True",
        )
        cursor = first.data[-1].id
        rest = await h.store.load_thread_items(tid, cursor, 20, "desc", ctx)
        h.check(
            len(rest.data) == 5,
            f"load_thread_items({tid!r}, {cursor!r}, 20, 'desc') gave {len(rest.data)} rows, "
            "expected 5",
        )
        got = [item.created_at for item in first.data + rest.data]
        wrong = next(
            (i for i, (a, b) in enumerate(zip(got, created[::-1], strict=True)) if a != b), None
        )
        h.check(
            wrong is None,
            f"desc walk: row {wrong}: created_at expected {created[::-1][wrong or 0]!r}, got "
            f"{got[wrong or 0]!r} (values must come back strictly decreasing)",
        )

    @rule(
        "json-exact",
        "JSON values come back as the client reads them: strings, booleans, nulls, nesting "
        "and every number's value (as a double: 1.06e19 may come back as an integer, -0.0 "
        "as 0.0)",
        protects="metadata, hidden context and tool arguments are app data the server hands "
        "back unchanged",
        needs=(ITEM_WRITES,),
        depends=(),
    )
    async def test_json_exact(self, h: Harness) -> None:
        await check_json_values(h, client_view=True)

    @rule(
        "returned-copies",
        "mutating saved or loaded threads and items cannot change stored state",
        protects="the server mutates loaded objects (tool_call.output, thread.title, "
        "items.data) and responders keep mutating emitted items",
        needs=(ITEM_WRITES,),
        depends=(),
    )
    async def test_returned_copies(self, h: Harness) -> None:
        ctx = h.context()
        tid, m0 = h.names("thr", "m0")
        saved = ThreadMetadata(id=tid, created_at=T0, title="kept", metadata={"k": [1]})
        item = assistant(m0, tid, T0, text="kept")
        await h.store.save_thread(saved, ctx)
        await h.store.add_thread_item(tid, item, ctx)
        saved.title = "changed"
        saved.metadata["k"].append(2)
        assert isinstance(item, AssistantMessageItem)
        item.content[0].text = "changed"
        loaded_thread = await h.store.load_thread(tid, ctx)
        loaded_thread.title = "changed"
        # .get: a store that lost the metadata fails below, with what it returned.
        loaded_list = loaded_thread.metadata.get("k")
        if isinstance(loaded_list, list):
            loaded_list.append(3)
        loaded_thread.metadata["added"] = True
        loaded_item = await h.store.load_item(tid, m0, ctx)
        if isinstance(loaded_item, AssistantMessageItem):
            loaded_item.content.append(AssistantMessageContent(text="extra"))
        page = await h.store.load_thread_items(tid, None, 10, "asc", ctx)
        for row in page.data:
            row.id = "changed"
        expected_thread = ThreadMetadata(id=tid, created_at=T0, title="kept", metadata={"k": [1]})
        problem = row_difference(expected_thread, await h.store.load_thread(tid, ctx))
        h.check(
            problem is None,
            f"load_thread({tid!r}) after the saved and a loaded copy were mutated: {problem}",
        )
        problem = row_difference(
            assistant(m0, tid, T0, text="kept"), await h.store.load_item(tid, m0, ctx)
        )
        h.check(
            problem is None,
            f"load_item({tid!r}, {m0!r}) after the added and loaded copies were mutated: {problem}",
        )

    @rule(
        "thread-metadata-only",
        "save_thread of a Thread stores only its ThreadMetadata fields",
        protects="threads.create passes a live Thread; _load_full_thread builds "
        "Thread(**loaded.model_dump(), items=...)",
        depends=(),
        relies_on=("returned-copies",),
    )
    async def test_thread_metadata_only(self, h: Harness) -> None:
        ctx = h.context()
        tid, msg_1 = h.names("thr_1", "msg_1")
        item = user_message(msg_1, tid, T0)
        await h.store.save_thread(
            Thread(id=tid, created_at=T0, title="t", items=Page(data=[item])), ctx
        )
        loaded = await h.store.load_thread(tid, ctx)
        h.check(
            type(loaded) is ThreadMetadata,
            f"load_thread returned a {type(loaded).__name__}, expected plain ThreadMetadata",
        )
        try:
            Thread(**loaded.model_dump(), items=Page())
        except TypeError as exc:
            h.fail(f"Thread(**loaded.model_dump(), items=...) raised {exc}")
        problem = row_difference(thread(tid, title="t"), loaded)
        h.check(problem is None, f"load_thread({tid!r}) after saving a Thread: {problem}")
        items = await h.store.load_thread_items(tid, None, 10, "asc", ctx)
        h.check(
            items.data == [],
            f"load_thread_items({tid!r}) lists {short(ids(items.data))}: save_thread stored "
            "the Thread's items",
        )

    # Concurrency and the event loop

    @rule(
        "concurrent-adds-exactly-once",
        "N concurrent add_thread_item calls on one thread store each item exactly once; "
        "every page walk sees each exactly once",
        protects="a server streams several responses into one thread at once",
        needs=(ITEM_WRITES,),
        depends=("exclusive-cursor", "has-more-needs-cursor"),
    )
    async def test_concurrent_adds_exactly_once(self, h: Harness) -> None:
        ctx = h.context()
        (tid,) = h.names("thr")
        await h.store.save_thread(thread(tid), ctx)
        count = h.profile["concurrent_adds"]
        # Distinct stamps in time order: ties and ordering have rules of their own, so a tie
        # bug is never reported as a concurrency failure; the order among racing writes is free.
        items = [
            assistant(f"{tid}_m{i:03d}", tid, T0 + timedelta(microseconds=i)) for i in range(count)
        ]
        await asyncio.gather(*(h.store.add_thread_item(tid, item, ctx) for item in items))
        model = ReferenceModel()
        for item in items:
            model.upsert_item("o", tid, item)
        walks = {}
        for order, limit in (("asc", 7), ("desc", 4)):
            shown = f"load_thread_items({tid!r}, after, {limit}, {order!r})"
            got = await walk(
                h,
                lambda after, n: h.store.load_thread_items(tid, after, n, order, ctx),  # noqa: B023
                limit,
                count + 2,
                shown,
            )
            problem = listing_problem(got, model.item_rows("o", tid), order, ordered=False)
            h.check(
                problem is None,
                f"{shown} walk after {count} concurrent add_thread_item calls: {problem}",
            )
            walks[order] = ids(got)
        h.check(
            walks["desc"] == walks["asc"][::-1],
            f"after {count} concurrent adds the desc walk is not the reverse of the asc walk",
        )

    @rule(
        "does-not-block-loop",
        "store calls on a big thread (1,000 items; 10,000 under the deep profile) yield to "
        "the event loop: fewer than half of them do blocking I/O (file system calls or sleeps "
        "on the loop thread, from its scheduler statistics) or run `loop_cpu_threshold_ms` "
        "(10 ms) of CPU without ever letting another task run",
        protects="one server process serves every user's stream on one event loop",
    )
    async def test_does_not_block_loop(self, h: Harness) -> None:
        ctx = h.context()
        size: int = h.profile["loop_thread_items"]
        # Data of its own, so nothing an earlier rule left (or failed on) is in the way.
        thread_id = f"thr_loop_{uuid.uuid4().hex[:12]}"
        await h.store.save_thread(thread(thread_id), ctx)
        start = T0 - timedelta(days=1)
        batch = 100
        for first in range(0, size, batch):
            await asyncio.gather(
                *(
                    h.store.add_thread_item(
                        thread_id,
                        assistant(f"m{i:05d}", thread_id, start + timedelta(seconds=i)),
                        ctx,
                    )
                    for i in range(first, min(size, first + batch))
                )
            )
        middle = f"m{size // 2:05d}"
        store = h.store
        fresh = itertools.count()

        def new_item() -> ThreadItem:
            # A new id every round: a store that is not idempotent is still measured.
            return assistant(f"m_new{next(fresh)}", thread_id, T0)

        newest: list[ThreadItem] = [new_item()]

        async def add_new() -> None:
            newest[0] = new_item()
            await store.add_thread_item(thread_id, newest[0], ctx)

        calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            (
                "load_thread_items(newest 20)",
                lambda: store.load_thread_items(thread_id, None, 20, "desc", ctx),
            ),
            (
                "load_thread_items(oldest 20)",
                lambda: store.load_thread_items(thread_id, None, 20, "asc", ctx),
            ),
            (
                "load_thread_items(20 after the middle)",
                lambda: store.load_thread_items(thread_id, middle, 20, "asc", ctx),
            ),
            (
                "load_thread_items(20 before the middle)",
                lambda: store.load_thread_items(thread_id, middle, 20, "desc", ctx),
            ),
            ("load_item(the middle)", lambda: store.load_item(thread_id, middle, ctx)),
            ("load_thread", lambda: store.load_thread(thread_id, ctx)),
            ("add_thread_item(a new item)", add_new),
            ("save_item(that item)", lambda: store.save_item(thread_id, newest[0], ctx)),
        ]
        fallback = self.loop_block_threshold_ms / 1000
        cpu_limit = self.loop_cpu_threshold_ms / 1000
        io: list[tuple[float, str, LoopHold]] = []
        cpu: list[tuple[float, str, LoopHold]] = []
        total = 0
        clock = LoopThreadClock()
        try:
            for _ in range(3):
                for shown, call in calls:
                    hold = await clock.measure(_ignoring_errors(call))
                    total += 1
                    # CPU first: a long CPU-bound call can also wait for the GIL, which
                    # the kernel counts as a voluntary switch.
                    if hold.cpu_bound(cpu_limit):
                        cpu.append((hold.cpu, shown, hold))
                    elif hold.blocking_io(fallback):
                        io.append((hold.wall, shown, hold))
        finally:
            clock.close()
        if len(io) * 2 >= total:
            _, worst_call, worst = max(io, key=lambda entry: entry[0])
            h.fail(
                f"{len(io)} of {total} calls on a thread of {size} items did blocking I/O "
                f"without yielding to the event loop (e.g. {worst_call}: {worst.describe()}): "
                "the store runs a synchronous driver or file access on the loop; await an "
                "async driver or move the work to a thread"
            )
        if (len(io) + len(cpu)) * 2 >= total:
            _, worst_call, worst = max(cpu + io, key=lambda entry: entry[2].cpu)
            also = f", {len(io)} more did blocking I/O" if io else ""
            h.fail(
                f"{len(cpu)} of {total} calls on a thread of {size} items were CPU-bound, "
                f"running {self.loop_cpu_threshold_ms:g} ms of CPU or more without yielding to "
                f"the event loop{also} (worst: {worst_call}: {worst.describe()}): the store "
                "works through the whole thread on every call; index or page the rows"
            )

    # Attachments (need the capability)

    @rule(
        "attachment-round-trip",
        "attachments round-trip, save_attachment upserts, delete removes, deleting a missing "
        "one is a no-op, loaded copies are copies, hostile ids are data",
        protects="attachments.create saves, sending a message saves again with thread_id, "
        "attachments.delete deletes",
        needs=(ATTACHMENTS,),
        depends=(),
    )
    def test_attachment_round_trip(self, h: Harness) -> None:
        @h.examples(strategies.attachments())
        async def check(attachment: Any) -> None:
            ctx = h.context()
            attachment = attachment.model_copy(update={"id": h.fresh_like(attachment.id)})
            await h.store.save_attachment(attachment, ctx)
            loaded = await h.store.load_attachment(attachment.id, ctx)
            h.check(
                loaded == attachment,
                f"attachment came back different: {difference(attachment, loaded)}",
            )
            loaded.name = "changed"
            h.check(
                await h.store.load_attachment(attachment.id, ctx) == attachment,
                "mutating a loaded attachment changed the stored one",
            )
            sent = attachment.model_copy(update={"thread_id": "thr_sent"})
            await h.store.save_attachment(sent, ctx)
            loaded = await h.store.load_attachment(attachment.id, ctx)
            h.check(loaded == sent, f"upsert gave {loaded!r}")
            await h.store.delete_attachment(attachment.id, ctx)
            h.check(
                await raises_not_found(h.store.load_attachment(attachment.id, ctx)) is not None,
                "a deleted attachment still loads",
            )
            await h.store.delete_attachment(attachment.id, ctx)

        async def hostile() -> None:
            ctx = h.context()
            prefix = uuid.uuid4().hex[:8] + "_"
            for name in (_cut(prefix + hostile) for hostile in _SHORT_HOSTILE_IDS):
                saved = FileAttachment(id=name, name=name, mime_type="text/plain")
                await h.store.save_attachment(saved, ctx)
                loaded = await h.store.load_attachment(name, ctx)
                h.check(
                    loaded == saved,
                    f"load_attachment({short(name)}): {difference(saved, loaded)}",
                )
            wildcard = prefix + "a_b_"
            h.check(
                await raises_not_found(h.store.load_attachment(wildcard, ctx)) is not None,
                f"load_attachment({wildcard!r}) loaded: an id matched like a wildcard",
            )

        h.run(hostile())

    @rule(
        "attachment-owner-isolation",
        "one owner's attachments are invisible to, and untouched by, every other owner",
        protects="attachment ids come from the client in every user message",
        needs=(ATTACHMENTS,),
        depends=(),
    )
    async def test_attachment_owner_isolation(self, h: Harness) -> None:
        alice, bob = h.context(), h.context()
        (atc,) = h.names("atc_1")  # one id under two owners: what this rule is about
        attachment = FileAttachment(id=atc, name="a.txt", mime_type="text/plain")
        await h.store.save_attachment(attachment, alice)
        h.check(
            await raises_not_found(h.store.load_attachment(atc, bob)) is not None,
            f"load_attachment({atc!r}) of another owner loaded the attachment",
        )
        await h.store.save_attachment(
            ImageAttachment(
                id=atc, name="b.png", mime_type="image/png", preview_url="https://b.example/"
            ),
            bob,
        )
        h.check(
            await h.store.load_attachment(atc, alice) == attachment,
            f"load_attachment({atc!r}): another owner's save_attachment overwrote it",
        )
        await h.store.delete_attachment(atc, bob)
        h.check(
            await h.store.load_attachment(atc, alice) == attachment,
            f"load_attachment({atc!r}): another owner's delete_attachment deleted it",
        )

    # Everything at once

    @rule(
        "stateful-model",
        "random sequences of every store operation by two owners agree with a reference "
        "model, on every page of every walk (either upsert position accepted)",
        protects="all of the above, in combinations no single example thinks of",
        relies_on=_STATEFUL_RELIES_ON,
    )
    def test_stateful_model(self, h: Harness) -> None:
        run_machine(h, strict=False)


def _cut(value: str) -> str:
    """`value` cut to the longest storable id (MAX_ID_BYTES of UTF-8)."""
    while len(value.encode()) > MAX_ID_BYTES:
        value = value[:-1]
    return value


def _ignoring_errors(call: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    """The call, with any error it raises set aside: other rules judge what the store returns."""

    async def run() -> None:
        try:
            await call()
        except Exception:
            pass

    return run
