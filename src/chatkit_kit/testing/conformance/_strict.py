"""The strict tier: chatkit-kit's own store policies, beyond what ChatKit needs.

Every chatkit-kit store passes these; a third-party store may legitimately choose otherwise.
Opt in with `StrictStoreConformance` (or `run_conformance(..., strict=True)`, `--strict`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from chatkit.types import FileAttachment, ThreadItem

from ...stores import MAX_ID_BYTES, is_storable_id
from .._model import ReferenceModel, expected_page
from . import _contract  # noqa: F401  (its rules come first: stateful-exact-model relies on one)
from ._capabilities import ITEM_WRITES
from ._harness import Harness, SuiteBase, rule
from ._stateful import run_machine
from ._values import (
    T0,
    assistant,
    check_json_values,
    ids,
    raises,
    raises_not_found,
    thread,
)

_UNSTORABLE_IDS = ("nul\x00id", "x" * (MAX_ID_BYTES + 1), "é" * (MAX_ID_BYTES // 2 + 1))


class StrictRules(SuiteBase):
    """chatkit-kit's policies (the opt-in strict tier)."""

    @rule(
        "thread-not-found-message",
        "load_thread's NotFoundError reads 'Thread <id> not found'",
        protects="policy: upstream's server tests match this message",
        tier="strict",
        depends=(),
    )
    async def test_thread_not_found_message(self, h: Harness) -> None:
        exc = await raises_not_found(h.store.load_thread("thr_missing", h.context()))
        h.check(
            exc is not None,
            "load_thread('thr_missing') did not raise NotFoundError (thread-not-found)",
        )
        h.check(
            "Thread thr_missing not found" in str(exc),
            f"load_thread('thr_missing') raised NotFoundError({str(exc)[:80]!r}); expected a "
            "message containing 'Thread thr_missing not found'",
        )

    @rule(
        "unknown-cursor-raises",
        "an `after` naming no row of that collection raises NotFoundError (no empty page)",
        protects="policy: a stale cursor is an error the caller can see",
        tier="strict",
        needs=(ITEM_WRITES,),
    )
    async def test_unknown_cursor_raises(self, h: Harness) -> None:
        alice, bob = h.context(), h.context()
        thr_1, msg_1, msg_bob, missing, thr_missing = h.names(
            "thr_1", "msg_1", "msg_bob", "msg_missing", "thr_missing"
        )
        await h.store.save_thread(thread(thr_1), alice)
        await h.store.add_thread_item(thr_1, assistant(msg_1, thr_1, T0), alice)
        await h.store.save_thread(thread(thr_1), bob)
        await h.store.add_thread_item(thr_1, assistant(msg_bob, thr_1, T0), bob)
        for order in ("asc", "desc"):
            for cursor in (missing, msg_bob):
                exc = await raises_not_found(
                    h.store.load_thread_items(thr_1, cursor, 5, order, alice)
                )
                h.check(exc is not None, f"no NotFoundError for items after {cursor!r} ({order})")
            exc = await raises_not_found(h.store.load_threads(5, thr_missing, order, alice))
            h.check(
                exc is not None, f"no NotFoundError for threads after {thr_missing!r} ({order})"
            )

    @rule(
        "upsert-keeps-position",
        "an upserted thread or item keeps its original position (its new created_at is "
        "stored but does not move it)",
        protects="policy: a replaced item stays where the user saw it",
        tier="strict",
        needs=(ITEM_WRITES,),
    )
    async def test_upsert_keeps_position(self, h: Harness) -> None:
        ctx = h.context()
        tid, late, *m = h.names("thr_1", "thr_2", "m0", "m1", "m2")
        await h.store.save_thread(thread(tid), ctx)
        await h.store.save_thread(thread(late, T0 + timedelta(seconds=1)), ctx)
        for i in range(3):
            await h.store.add_thread_item(tid, assistant(m[i], tid, T0 + timedelta(seconds=i)), ctx)
        await h.store.add_thread_item(tid, assistant(m[0], tid, T0 + timedelta(10)), ctx)
        await h.store.save_item(tid, assistant(m[1], tid, T0 + timedelta(11)), ctx)
        await h.store.save_thread(thread(tid, T0 + timedelta(12)), ctx)
        page = await h.store.load_thread_items(tid, None, 10, "asc", ctx)
        h.check(ids(page.data) == m, f"items after upserts: {ids(page.data)}")
        threads = await h.store.load_threads(10, None, "asc", ctx)
        mine = [i for i in ids(threads.data) if i in (tid, late)]  # another owner's: not here
        h.check(mine == [tid, late], f"threads: {ids(threads.data)}")

    @rule(
        "items-sorted-by-created-at",
        "items added out of created_at order still list by created_at (not insertion order)",
        protects="policy: an app that back-dates an item sees it where its time puts it",
        tier="strict",
        needs=(ITEM_WRITES,),
    )
    async def test_items_sorted_by_created_at(self, h: Harness) -> None:
        ctx = h.context()
        tid, *names = h.names(
            "thr_1", "msg_100000", "msg_000001", "msg_050000", "msg_999999", "msg_000000"
        )
        await h.store.save_thread(thread(tid), ctx)
        for i in [3, 0, 4, 1, 2]:
            await h.store.add_thread_item(
                tid, assistant(names[i], tid, T0 + timedelta(seconds=i)), ctx
            )
        asc = await h.store.load_thread_items(tid, None, 10, "asc", ctx)
        h.check(
            ids(asc.data) == names,
            f"load_thread_items({tid!r}, None, 10, 'asc') gave {ids(asc.data)}; expected "
            f"{names} (added as {[names[i] for i in [3, 0, 4, 1, 2]]})",
        )

    @rule(
        "json-types-exact",
        "JSON values come back with their exact types: 1.06e19 stays a float, -0.0 stays "
        "-0.0, big integers stay integers",
        protects="policy: app code reading metadata back in Python sees the types it wrote",
        tier="strict",
        needs=(ITEM_WRITES,),
    )
    async def test_json_types_exact(self, h: Harness) -> None:
        await check_json_values(h, client_view=False)

    @rule(
        "ties-insertion-order",
        "rows sharing a created_at keep insertion order",
        protects="policy: ties read in the order they were written",
        tier="strict",
        needs=(ITEM_WRITES,),
    )
    def test_ties_insertion_order(self, h: Harness) -> None:
        from hypothesis import strategies as st

        @h.examples(
            st.lists(st.sampled_from([T0, T0, T0 + timedelta(microseconds=1)]), max_size=10),
            st.sampled_from(["asc", "desc"]),
        )
        async def check(stamps: list[Any], order: str) -> None:
            ctx = h.context()
            model = ReferenceModel()
            (tid,) = h.names("thr")
            await h.store.save_thread(thread(tid), ctx)
            for i, stamp in enumerate(stamps):
                item: ThreadItem = assistant(f"{tid}_m{i}", tid, stamp)
                await h.store.add_thread_item(tid, item, ctx)
                model.upsert_item("o", tid, item)
            expected = expected_page(model.item_rows("o", tid), None, 100, order)
            assert expected is not None
            got = await h.store.load_thread_items(tid, None, 100, order, ctx)
            h.check(
                ids(got.data) == ids(expected.data),
                f"{order}: {ids(got.data)}, insertion order {ids(expected.data)}",
            )

    @rule(
        "bad-order-and-limit",
        "an order other than asc/desc or a limit below 1 raises ValueError; huge limits are capped",
        protects="policy: app code may pass anything; refuse it instead of guessing",
        tier="strict",
        needs=(ITEM_WRITES,),
    )
    async def test_bad_order_and_limit(self, h: Harness) -> None:
        ctx = h.context()
        (tid,) = h.names("thr")
        await h.store.save_thread(thread(tid), ctx)
        for i in range(3):
            await h.store.add_thread_item(tid, assistant(f"{tid}_m{i}", tid, T0), ctx)
        for order in ("ASC", "sideways", "asc; DROP TABLE items", ""):
            h.check(
                await raises(h.store.load_thread_items(tid, None, 5, order, ctx), ValueError),
                f"load_thread_items accepted order={order!r}",
            )
            h.check(
                await raises(h.store.load_threads(5, None, order, ctx), ValueError),
                f"load_threads accepted order={order!r}",
            )
        for limit in (0, -1):
            h.check(
                await raises(h.store.load_thread_items(tid, None, limit, "asc", ctx), ValueError),
                f"load_thread_items accepted limit={limit}",
            )
            h.check(
                await raises(h.store.load_threads(limit, None, "asc", ctx), ValueError),
                f"load_threads accepted limit={limit}",
            )
        page = await h.store.load_thread_items(tid, None, 10**9, "asc", ctx)
        h.check(len(page.data) == 3, "a huge limit was not served")

    @rule(
        "unstorable-ids",
        f"ids up to {MAX_ID_BYTES} bytes of UTF-8 are stored; ids with NUL or longer are refused "
        "with ValueError on write, and not found (or an empty page, or a no-op) on read",
        protects="policy: every key fits the database's index limits",
        tier="strict",
        needs=(ITEM_WRITES,),
    )
    async def test_unstorable_ids(self, h: Harness) -> None:
        ctx = h.context()
        # The longest id, fresh to this run (a new prefix, then x up to MAX_ID_BYTES).
        longest, wide = h.fresh_like("x" * MAX_ID_BYTES), "é" * (MAX_ID_BYTES // 2)
        await h.store.save_thread(thread(longest), ctx)
        for item_id in (longest, wide):
            await h.store.add_thread_item(longest, assistant(item_id, longest, T0), ctx)
            h.check(
                (await h.store.load_item(longest, item_id, ctx)).id == item_id,
                f"an id of {len(item_id.encode())} bytes did not round-trip",
            )
        for bad in _UNSTORABLE_IDS:
            shown = repr(bad[:20])
            writes: list[tuple[str, Callable[[], Awaitable[None]]]] = [
                ("save_thread", lambda: h.store.save_thread(thread(bad), ctx)),  # noqa: B023
                (
                    "add_thread_item",
                    lambda: h.store.add_thread_item(longest, assistant(bad, longest, T0), ctx),  # noqa: B023
                ),
                (
                    "save_item",
                    lambda: h.store.save_item(longest, assistant(bad, longest, T0), ctx),  # noqa: B023
                ),
            ]
            for what, write in writes:
                h.check(await raises(write(), ValueError), f"{what} accepted id {shown}")
            h.check(
                await raises_not_found(h.store.load_thread(bad, ctx)) is not None,
                f"load_thread({shown}) did not raise NotFoundError",
            )
            h.check(
                await raises_not_found(h.store.load_item(longest, bad, ctx)) is not None,
                f"load_item(..., {shown}) did not raise NotFoundError",
            )
            page = await h.store.load_thread_items(bad, None, 5, "asc", ctx)
            h.check(page.data == [], f"load_thread_items({shown}) listed rows")
            await h.store.delete_thread(bad, ctx)
            await h.store.delete_thread_item(longest, bad, ctx)
            if h.capabilities.attachments:
                attachment = FileAttachment(id=bad, name="n", mime_type="text/plain")
                h.check(
                    await raises(h.store.save_attachment(attachment, ctx), ValueError),
                    f"save_attachment accepted id {shown}",
                )
                h.check(
                    await raises_not_found(h.store.load_attachment(bad, ctx)) is not None,
                    f"load_attachment({shown}) did not raise NotFoundError",
                )
                await h.store.delete_attachment(bad, ctx)
        threads = await h.store.load_threads(10, None, "asc", ctx)
        h.check(ids(threads.data) == [longest], f"threads listed: {len(threads.data)}")

    @rule(
        "generated-ids-storable",
        "generated thread and item ids are storable ids",
        protects="policy: what the store generates, it accepts",
        tier="strict",
        depends=(),
    )
    async def test_generated_ids_storable(self, h: Harness) -> None:
        ctx = h.context()
        made = [h.store.generate_thread_id(ctx) for _ in range(50)]
        made += [h.store.generate_item_id("message", thread("thr"), ctx) for _ in range(50)]
        bad = [i for i in made if not is_storable_id(i)]
        h.check(not bad, f"generated unstorable ids {bad[:3]!r}")

    @rule(
        "item-write-needs-thread",
        "an item write into a thread that was never saved, or was deleted, raises NotFoundError "
        "and stores nothing",
        protects="policy: no orphan items; a write racing delete_thread cannot outlive it",
        tier="strict",
        needs=(ITEM_WRITES,),
    )
    async def test_item_write_needs_thread(self, h: Harness) -> None:
        alice, bob = h.context(), h.context()
        thr_bob, thr_gone, thr_never, m0, m1 = h.names(
            "thr_bob", "thr_gone", "thr_never", "m0", "m1"
        )
        await h.store.save_thread(thread(thr_bob), bob)
        await h.store.save_thread(thread(thr_gone), alice)
        await h.store.add_thread_item(thr_gone, assistant(m0, thr_gone, T0), alice)
        await h.store.delete_thread(thr_gone, alice)
        cases = (
            (thr_never, "never saved"),
            (thr_bob, "saved by another owner only"),
            (thr_gone, "deleted"),
        )
        for thread_id, why in cases:
            for write in (h.store.add_thread_item, h.store.save_item):
                item = assistant(m1, thread_id, T0)
                exc = await raises_not_found(write(thread_id, item, alice))
                h.check(
                    exc is not None,
                    f"{write.__name__} into a thread {why} ({thread_id!r}) did not raise "
                    "NotFoundError",
                )
            await h.store.save_thread(thread(thread_id), alice)  # the id comes back, empty
            items = await h.store.load_thread_items(thread_id, None, 10, "asc", alice)
            h.check(
                items.data == [],
                f"after refused writes into a thread {why}, saving {thread_id!r} again shows "
                f"items {ids(items.data)}",
            )
        bob_items = await h.store.load_thread_items(thr_bob, None, 10, "asc", bob)
        h.check(bob_items.data == [], f"another owner's writes landed in bob's thread: {bob_items}")

    @rule(
        "stateful-exact-model",
        "random sequences of every store operation match the reference model exactly, page for "
        "page (insertion order for ties, upserts in place)",
        protects="policy: one exact order, the reference model's",
        tier="strict",
        # The contract tier's stateful test and the policies this one checks again.
        relies_on=(
            "stateful-model",
            "unknown-cursor-raises",
            "upsert-keeps-position",
            "ties-insertion-order",
            "item-write-needs-thread",
        ),
    )
    def test_stateful_exact_model(self, h: Harness) -> None:
        run_machine(h, strict=True)
