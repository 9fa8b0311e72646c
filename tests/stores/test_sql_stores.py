"""Behaviour of SQLAlchemyStore (SQLite, PostgreSQL via asyncpg and psycopg) and AsyncpgStore."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    FileAttachment,
    HiddenContextItem,
    InferenceOptions,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)

from chatkit_kit.stores import MAX_PAGE_LIMIT, default_owner
from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.fixtures.context import Ctx

from .sql_support import Flavour, sqlalchemy_url

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456)


ALICE = Ctx("alice")
BOB = Ctx("bob")


def thread(thread_id: str, at: datetime = T0, **fields: Any) -> ThreadMetadata:
    return ThreadMetadata(id=thread_id, created_at=at, **fields)


def user_message(item_id: str, at: datetime = T0, text: str = "hello") -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id="thr",
        created_at=at,
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )


def assistant_message(item_id: str, at: datetime = T0, text: str = "hi") -> AssistantMessageItem:
    return AssistantMessageItem(
        id=item_id, thread_id="thr", created_at=at, content=[AssistantMessageContent(text=text)]
    )


async def page_ids(store: Any, thread_id: str, after: str | None, limit: int, order: str) -> Any:
    page = await store.load_thread_items(thread_id, after, limit, order, ALICE)
    return [item.id for item in page.data], page.has_more, page.after


async def test_round_trip_keeps_nul_and_naive_or_aware_created_at(sql_store: Any) -> None:
    naive = thread("thr_naive", T0, title="a\x00b", metadata={"k\x00": ["\x00", 1]})
    aware = thread("thr_aware", T0.replace(tzinfo=timezone(timedelta(hours=5, minutes=30))))
    for t in (naive, aware):
        await sql_store.save_thread(t, ALICE)
        loaded = await sql_store.load_thread(t.id, ALICE)
        assert loaded == t
        assert loaded.created_at.tzinfo == t.created_at.tzinfo
    item = user_message("msg\\'%_1", T0, text="nul \x00 and quote ' and \\ and \u2603")
    await sql_store.add_thread_item("thr_naive", item, ALICE)
    assert await sql_store.load_item("thr_naive", item.id, ALICE) == item
    page = await sql_store.load_thread_items("thr_naive", None, 10, "asc", ALICE)
    assert page.data == [item]
    assert page.data[0].created_at.tzinfo is None


async def test_pages_break_created_at_ties_by_insertion_order(sql_store: Any) -> None:
    # msg_9 is inserted first; lexical id order differs from insertion order on purpose.
    ids = [f"msg_{9 - n}" for n in range(7)]
    await sql_store.save_thread(thread("thr"), ALICE)
    for item_id in ids:
        await sql_store.add_thread_item("thr", user_message(item_id, T0), ALICE)
    assert await page_ids(sql_store, "thr", None, 3, "asc") == (ids[:3], True, ids[2])
    assert await page_ids(sql_store, "thr", ids[2], 3, "asc") == (ids[3:6], True, ids[5])
    assert await page_ids(sql_store, "thr", ids[5], 3, "asc") == (ids[6:], False, None)
    rev = ids[::-1]
    assert await page_ids(sql_store, "thr", None, 3, "desc") == (rev[:3], True, rev[2])
    assert await page_ids(sql_store, "thr", rev[2], 4, "desc") == (rev[3:7], False, None)
    assert await page_ids(sql_store, "thr", rev[-1], 4, "desc") == ([], False, None)


async def test_pages_follow_created_at_not_insertion(sql_store: Any) -> None:
    await sql_store.save_thread(thread("thr"), ALICE)
    await sql_store.save_thread(thread("aware"), ALICE)
    await sql_store.add_thread_item("thr", user_message("late", T0 + timedelta(seconds=2)), ALICE)
    await sql_store.add_thread_item("thr", user_message("early", T0), ALICE)
    await sql_store.add_thread_item("thr", user_message("mid", T0 + timedelta(seconds=1)), ALICE)
    assert (await page_ids(sql_store, "thr", None, 10, "asc"))[0] == ["early", "mid", "late"]
    assert (await page_ids(sql_store, "thr", None, 10, "desc"))[0] == ["late", "mid", "early"]
    # Aware values sort by their UTC instant, whatever their offset.
    utc = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
    plus5 = datetime(2026, 1, 1, 12, 30, tzinfo=timezone(timedelta(hours=5)))  # 07:30Z
    minus2 = datetime(2026, 1, 1, 9, 0, tzinfo=timezone(timedelta(hours=-2)))  # 11:00Z
    for item_id, at in (("utc", utc), ("plus5", plus5), ("minus2", minus2)):
        await sql_store.add_thread_item("aware", user_message(item_id, at), ALICE)
    assert (await page_ids(sql_store, "aware", None, 10, "asc"))[0] == ["plus5", "utc", "minus2"]


async def test_upserts_keep_the_original_position(sql_store: Any) -> None:
    await sql_store.save_thread(thread("thr"), ALICE)
    for n in range(3):
        await sql_store.add_thread_item("thr", user_message(f"m{n}", T0 + timedelta(n)), ALICE)
    replacement = assistant_message("m0", T0 + timedelta(days=10), text="replaced")
    await sql_store.add_thread_item("thr", replacement, ALICE)
    await sql_store.save_item("thr", replacement, ALICE)
    assert (await page_ids(sql_store, "thr", None, 10, "asc"))[0] == ["m0", "m1", "m2"]
    assert await sql_store.load_item("thr", "m0", ALICE) == replacement
    await sql_store.save_thread(thread("t1", T0), ALICE)
    await sql_store.save_thread(thread("t2", T0 + timedelta(1)), ALICE)
    await sql_store.save_thread(thread("t1", T0 + timedelta(5), title="new"), ALICE)
    page = await sql_store.load_threads(10, None, "asc", ALICE)
    assert [t.id for t in page.data] == ["thr", "t1", "t2"]
    assert page.data[1].title == "new"


async def test_save_thread_stores_metadata_of_a_thread_with_items(sql_store: Any) -> None:
    from chatkit.types import Page, Thread

    full = Thread(id="thr_full", created_at=T0, items=Page(data=[user_message("m")]))
    await sql_store.save_thread(full, ALICE)
    loaded = await sql_store.load_thread("thr_full", ALICE)
    assert type(loaded) is ThreadMetadata
    assert loaded == ThreadMetadata(**full.model_dump(exclude={"items"}))


async def test_unknown_cursors_raise_not_found(sql_store: Any) -> None:
    await sql_store.save_thread(thread("t1"), ALICE)
    await sql_store.add_thread_item("t1", user_message("m1"), ALICE)
    for cursor in ("nope", "x" * 10_000, "a\x00b"):
        with pytest.raises(NotFoundError):
            await sql_store.load_threads(5, cursor, "desc", ALICE)
        with pytest.raises(NotFoundError):
            await sql_store.load_thread_items("t1", cursor, 5, "asc", ALICE)
    # Another owner's row is not a cursor either.
    await sql_store.save_thread(thread("t_bob"), BOB)
    with pytest.raises(NotFoundError):
        await sql_store.load_threads(5, "t_bob", "desc", ALICE)
    # The last row is a valid cursor with an empty page after it.
    assert await page_ids(sql_store, "t1", "m1", 5, "asc") == ([], False, None)


async def test_bad_order_and_limit(sql_store: Any) -> None:
    for order in ("ASC", "up", "", None, "asc; DROP TABLE x"):
        with pytest.raises(ValueError, match="order"):
            await sql_store.load_thread_items("t", None, 5, order, ALICE)
        with pytest.raises(ValueError, match="order"):
            await sql_store.load_threads(5, None, order, ALICE)
    for limit in (0, -1):
        with pytest.raises(ValueError, match="limit"):
            await sql_store.load_threads(limit, None, "asc", ALICE)
        with pytest.raises(ValueError, match="limit"):
            await sql_store.load_thread_items("t", None, limit, "asc", ALICE)


async def test_huge_limits_are_capped(sql_store: Any) -> None:
    rows = [
        (ALICE.user_id, f"m{n:05d}", n) for n in range(MAX_PAGE_LIMIT + 5)
    ]  # bulk insert through the store would be slow; concurrency keeps it short
    sem = asyncio.Semaphore(4)
    await sql_store.save_thread(thread("big"), ALICE)

    async def add(item_id: str, n: int) -> None:
        async with sem:
            item = user_message(item_id, T0 + timedelta(microseconds=n))
            await sql_store.add_thread_item("big", item, ALICE)

    await asyncio.gather(*(add(item_id, n) for _, item_id, n in rows))
    page = await sql_store.load_thread_items("big", None, 10**9, "asc", ALICE)
    assert len(page.data) == MAX_PAGE_LIMIT
    assert page.has_more and page.after == f"m{MAX_PAGE_LIMIT - 1:05d}"


HOSTILE_IDS = [
    "it's",
    'say "hi"',
    "100%",
    "a_b",
    "%_%",
    "back\\slash",
    "'; DROP TABLE chatkit_threads; --",
    "$1",
    ":owner",
    "\u2603\U0001f600",
    "x" * 512,
]


async def test_hostile_ids_are_data(sql_store: Any) -> None:
    for n, hostile in enumerate(HOSTILE_IDS):
        await sql_store.save_thread(thread(hostile, T0 + timedelta(seconds=n)), ALICE)
        assert (await sql_store.load_thread(hostile, ALICE)).id == hostile
        await sql_store.add_thread_item(hostile, user_message(hostile), ALICE)
        assert (await sql_store.load_item(hostile, hostile, ALICE)).id == hostile
        attachment = FileAttachment(id=hostile, name=hostile, mime_type="text/plain")
        await sql_store.save_attachment(attachment, ALICE)
        assert await sql_store.load_attachment(hostile, ALICE) == attachment
    page = await sql_store.load_threads(100, None, "asc", ALICE)
    assert [t.id for t in page.data] == HOSTILE_IDS
    # LIKE-style wildcards match nothing else.
    with pytest.raises(NotFoundError):
        await sql_store.load_thread("%", ALICE)
    with pytest.raises(NotFoundError):
        await sql_store.load_thread("a%b", ALICE)
    for hostile in HOSTILE_IDS:
        await sql_store.delete_thread(hostile, ALICE)
        await sql_store.delete_attachment(hostile, ALICE)
    assert (await sql_store.load_threads(100, None, "asc", ALICE)).data == []


async def test_unstorable_ids_are_rejected_on_write_and_unknown_on_read(sql_store: Any) -> None:
    for bad in ("", "a\x00b", "x" * 10_000):
        with pytest.raises(ValueError, match="cannot be stored"):
            await sql_store.save_thread(thread(bad), ALICE)
        with pytest.raises(ValueError, match="cannot be stored"):
            await sql_store.add_thread_item(bad, user_message("m"), ALICE)
        with pytest.raises(ValueError, match="cannot be stored"):
            await sql_store.save_item("t", user_message(bad), ALICE)
        with pytest.raises(ValueError, match="cannot be stored"):
            await sql_store.save_attachment(
                FileAttachment(id=bad, name="f", mime_type="text/plain"), ALICE
            )
        with pytest.raises(NotFoundError):
            await sql_store.load_thread(bad, ALICE)
        with pytest.raises(NotFoundError):
            await sql_store.load_item("t", bad, ALICE)
        with pytest.raises(NotFoundError):
            await sql_store.load_attachment(bad, ALICE)
        assert (await sql_store.load_thread_items(bad, None, 5, "asc", ALICE)).data == []
        await sql_store.delete_thread(bad, ALICE)
        await sql_store.delete_thread_item("t", bad, ALICE)
        await sql_store.delete_attachment(bad, ALICE)


async def test_owners_are_isolated(sql_store: Any) -> None:
    await sql_store.save_thread(thread("shared"), ALICE)
    await sql_store.add_thread_item("shared", user_message("m"), ALICE)
    await sql_store.save_attachment(FileAttachment(id="a", name="f", mime_type="x/y"), ALICE)
    with pytest.raises(NotFoundError, match="Thread shared not found"):
        await sql_store.load_thread("shared", BOB)
    with pytest.raises(NotFoundError):
        await sql_store.load_item("shared", "m", BOB)
    with pytest.raises(NotFoundError):
        await sql_store.load_attachment("a", BOB)
    assert (await sql_store.load_thread_items("shared", None, 5, "asc", BOB)).data == []
    assert (await sql_store.load_threads(5, None, "asc", BOB)).data == []
    # Same ids under another owner are other rows; deletes by Bob leave Alice's rows alone.
    await sql_store.save_thread(thread("shared", title="bob's"), BOB)
    await sql_store.delete_thread("shared", BOB)
    await sql_store.delete_thread_item("shared", "m", BOB)
    await sql_store.delete_attachment("a", BOB)
    assert (await sql_store.load_thread("shared", ALICE)).title is None
    assert (await sql_store.load_item("shared", "m", ALICE)).id == "m"
    assert (await sql_store.load_attachment("a", ALICE)).id == "a"


async def test_deletes(sql_store: Any) -> None:
    await sql_store.save_thread(thread("t"), ALICE)
    await sql_store.save_thread(thread("other"), ALICE)
    for n in range(3):
        await sql_store.add_thread_item("t", user_message(f"m{n}", T0 + timedelta(n)), ALICE)
    await sql_store.add_thread_item("other", user_message("keep"), ALICE)
    await sql_store.delete_thread_item("t", "m1", ALICE)
    await sql_store.delete_thread_item("t", "missing", ALICE)
    assert (await page_ids(sql_store, "t", None, 5, "asc"))[0] == ["m0", "m2"]
    await sql_store.delete_thread("t", ALICE)
    await sql_store.delete_thread("t", ALICE)
    with pytest.raises(NotFoundError):
        await sql_store.load_thread("t", ALICE)
    assert (await sql_store.load_thread_items("t", None, 5, "asc", ALICE)).data == []
    assert (await page_ids(sql_store, "other", None, 5, "asc"))[0] == ["keep"]


async def test_attachments_upsert_and_hidden_items_are_cursors(sql_store: Any) -> None:
    attachment = FileAttachment(id="atc", name="f.txt", mime_type="text/plain", metadata={"k": 1})
    await sql_store.save_attachment(attachment, ALICE)
    moved = attachment.model_copy(update={"thread_id": "thr"})
    await sql_store.save_attachment(moved, ALICE)
    assert await sql_store.load_attachment("atc", ALICE) == moved
    await sql_store.save_thread(thread("thr"), ALICE)
    hidden = HiddenContextItem(id="h", thread_id="thr", created_at=T0, content={"x": [1, None]})
    await sql_store.add_thread_item("thr", hidden, ALICE)
    await sql_store.add_thread_item("thr", user_message("u", T0 + timedelta(1)), ALICE)
    assert await page_ids(sql_store, "thr", "h", 1, "asc") == (["u"], False, None)
    assert await sql_store.load_item("thr", "h", ALICE) == hidden


async def test_concurrent_writers_do_not_fail(sql_store: Any) -> None:
    async def write(n: int) -> None:
        await sql_store.save_thread(thread(f"c{n}", T0 + timedelta(seconds=n)), ALICE)
        try:
            await sql_store.add_thread_item(f"c{n}", user_message(f"m{n}"), ALICE)
        except NotFoundError:  # write(n + 1) deleted the thread meanwhile: refused, not lost
            assert n < 39
        await sql_store.delete_thread(f"c{n - 1}", ALICE)

    await asyncio.gather(*(write(n) for n in range(40)))
    page = await sql_store.load_threads(100, None, "asc", ALICE)
    assert "c39" in [t.id for t in page.data]


async def test_stores_share_rows_both_ways(pg_flavour: Flavour) -> None:
    flavour = pg_flavour
    assert flavour.dsn is not None
    owner = f"{uuid.uuid4().hex}:alice"
    kwargs: dict[str, Any] = {"schema": flavour.schema, "owner": lambda ctx: owner}
    if flavour.pgbouncer:  # every store on a PgBouncer DSN needs the option, not only `mine`
        kwargs["pgbouncer"] = True
    others = [
        await AsyncpgStore.connect(flavour.dsn, **kwargs),
        SQLAlchemyStore.from_url(sqlalchemy_url(flavour.dsn, "asyncpg"), **kwargs),
        SQLAlchemyStore.from_url(sqlalchemy_url(flavour.dsn, "psycopg"), **kwargs),
    ]
    mine = await flavour.make(**kwargs)
    try:
        for n, writer in enumerate([mine, *others]):
            t = thread(f"t{n}", T0 + timedelta(seconds=n), title=f"by {n}\x00")
            await writer.save_thread(t, ALICE)
            item = user_message(f"m{n}", t.created_at, text=f"from {n} \x00")
            await writer.add_thread_item(t.id, item, ALICE)
            for reader in [mine, *others]:
                assert await reader.load_thread(t.id, ALICE) == t
                assert (await reader.load_thread_items(t.id, None, 5, "desc", ALICE)).data == [item]
        for reader in [mine, *others]:
            page = await reader.load_threads(2, None, "desc", ALICE)
            assert [t.id for t in page.data] == ["t3", "t2"] and page.after == "t2"
    finally:
        for store in [mine, *others]:
            await store.close()


async def test_owner_resolver_errors_before_any_query(sql_store: Any) -> None:
    with pytest.raises(TypeError, match="owner"):
        await sql_store.load_thread("t", object())
    assert default_owner(ALICE) == "alice"


async def _count_items(store: Any, owner: str, thread_id: str) -> int:
    """Item rows of (owner, thread) in the table itself, not through the store's reads."""
    sql = store._names.format(
        "SELECT COUNT(*) FROM {items} WHERE owner = :owner AND thread_id = :thread_id"
    )
    return int(await store._fetch_value(sql, {"owner": owner, "thread_id": thread_id}))


async def test_item_writes_need_a_saved_thread_of_that_owner(sql_store: Any) -> None:
    """Writes into a thread never saved, saved only by another owner, or deleted raise
    NotFoundError and leave no row; the thread id saved again comes back empty."""
    alice, bob = sql_store.owner_key(ALICE), sql_store.owner_key(BOB)
    await sql_store.save_thread(thread("bobs"), BOB)
    await sql_store.save_thread(thread("gone"), ALICE)
    await sql_store.add_thread_item("gone", user_message("m0"), ALICE)
    assert await _count_items(sql_store, alice, "gone") == 1
    await sql_store.delete_thread("gone", ALICE)
    assert await _count_items(sql_store, alice, "gone") == 0
    for thread_id in ("never", "bobs", "gone"):
        for write in (sql_store.add_thread_item, sql_store.save_item):
            with pytest.raises(NotFoundError, match=f"Thread {thread_id} not found"):
                await write(thread_id, user_message("m1"), ALICE)
        assert await _count_items(sql_store, alice, thread_id) == 0
        await sql_store.save_thread(thread(thread_id), ALICE)
        assert (await sql_store.load_thread_items(thread_id, None, 10, "asc", ALICE)).data == []
        await sql_store.add_thread_item(thread_id, user_message("m2"), ALICE)
        assert await _count_items(sql_store, alice, thread_id) == 1
    assert await _count_items(sql_store, bob, "bobs") == 0
