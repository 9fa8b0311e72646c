"""load_history: newest-first pages, whole turns, item and token budgets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ClientToolCallItem,
    GeneratedImage,
    GeneratedImageItem,
    HiddenContextItem,
    ImageAttachment,
    InferenceOptions,
    Page,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)

from chatkit_kit.converters import ATTACHMENT_TOKEN_ESTIMATE, estimate_item_tokens, load_history
from chatkit_kit.stores import MemoryStore
from tests.fixtures.context import Ctx

from .test_attachments import CTX

T0 = datetime(2026, 1, 1, 12, 0, 0)


class CountingStore(MemoryStore[Ctx]):
    """MemoryStore that records every load_thread_items call."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[tuple[str | None, int, str]] = []

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Ctx
    ) -> Page[ThreadItem]:
        self.pages.append((after, limit, order))
        return await super().load_thread_items(thread_id, after, limit, order, context)


def user(i: int, text: str = "") -> UserMessageItem:
    return UserMessageItem(
        id=f"u{i}",
        thread_id="thr",
        created_at=T0 + timedelta(seconds=i),
        content=[UserMessageTextContent(text=text or f"question {i}")],
        inference_options=InferenceOptions(),
    )


def assistant(i: int, text: str = "") -> AssistantMessageItem:
    return AssistantMessageItem(
        id=f"a{i}",
        thread_id="thr",
        created_at=T0 + timedelta(seconds=i),
        content=[AssistantMessageContent(text=text or f"answer {i}")],
    )


def tool(i: int) -> ClientToolCallItem:
    return ClientToolCallItem(
        id=f"t{i}",
        thread_id="thr",
        created_at=T0 + timedelta(seconds=i),
        status="completed",
        call_id=f"call_{i}",
        name="lookup",
        arguments={"q": i},
        output={"ok": True},
    )


def hidden(i: int) -> HiddenContextItem:
    return HiddenContextItem(
        id=f"h{i}", thread_id="thr", created_at=T0 + timedelta(seconds=i), content="ctx"
    )


async def make_store(items: list[ThreadItem]) -> CountingStore:
    store = CountingStore()
    await store.save_thread(ThreadMetadata(id="thr", created_at=T0), CTX)
    for item in items:
        await store.add_thread_item("thr", item, CTX)
    return store


def ids(items: list[ThreadItem]) -> list[str]:
    return [item.id for item in items]


# A thread of four turns: [h0] [u1 a2] [u3 t4 a5] [u6 a7 t8 a9] [u10]
THREAD: list[ThreadItem] = [
    hidden(0),
    user(1),
    assistant(2),
    user(3),
    tool(4),
    assistant(5),
    user(6),
    assistant(7),
    tool(8),
    assistant(9),
    user(10),
]


async def test_whole_thread_when_it_fits() -> None:
    store = await make_store(THREAD)
    assert ids(await load_history(store, "thr", CTX, max_items=50)) == ids(THREAD)
    assert store.pages == [(None, 51, "desc")]


@pytest.mark.parametrize(
    ("max_items", "expected"),
    [
        (1, ["u10"]),
        (4, ["u10"]),
        (5, ["u6", "a7", "t8", "a9", "u10"]),
        (7, ["u6", "a7", "t8", "a9", "u10"]),
        (8, ["u3", "t4", "a5", "u6", "a7", "t8", "a9", "u10"]),
        (9, ["u3", "t4", "a5", "u6", "a7", "t8", "a9", "u10"]),
        (10, ["u1", "a2", "u3", "t4", "a5", "u6", "a7", "t8", "a9", "u10"]),
        (11, ids(THREAD)),
    ],
)
async def test_item_limit_cuts_only_between_turns(max_items: int, expected: list[str]) -> None:
    store = await make_store(THREAD)
    assert ids(await load_history(store, "thr", CTX, max_items=max_items)) == expected


async def test_newest_turn_is_kept_whole_even_over_the_limit() -> None:
    store = await make_store(THREAD[:-1])  # newest turn: u6 a7 t8 a9
    assert ids(await load_history(store, "thr", CTX, max_items=2)) == ["u6", "a7", "t8", "a9"]


async def test_reads_newest_first_pages_and_stops_early() -> None:
    items: list[ThreadItem] = []
    for turn in range(100):
        items += [user(2 * turn), assistant(2 * turn + 1)]
    store = await make_store(items)
    history = await load_history(store, "thr", CTX, max_items=6, page_size=4)
    assert ids(history) == ["u194", "a195", "u196", "a197", "u198", "a199"]
    assert store.pages == [(None, 4, "desc"), ("u196", 4, "desc")]


async def test_token_budget() -> None:
    store = await make_store(THREAD)
    costs = {item.id: estimate_item_tokens(item) for item in THREAD}
    last_two_turns = costs["u10"] + sum(costs[i] for i in ("u6", "a7", "t8", "a9"))
    history = await load_history(store, "thr", CTX, max_tokens=last_two_turns)
    assert ids(history) == ["u6", "a7", "t8", "a9", "u10"]
    history = await load_history(store, "thr", CTX, max_tokens=last_two_turns - 1)
    assert ids(history) == ["u10"]


async def test_custom_token_estimate() -> None:
    store = await make_store(THREAD)

    def estimate(item: Any) -> int:
        return 100 if item.id == "a5" else 1

    history = await load_history(store, "thr", CTX, max_tokens=50, estimate_tokens=estimate)
    assert ids(history) == ["u6", "a7", "t8", "a9", "u10"]


async def test_leading_items_before_the_first_user_message() -> None:
    store = await make_store([hidden(0), assistant(1), user(2), assistant(3)])
    assert ids(await load_history(store, "thr", CTX)) == ["h0", "a1", "u2", "a3"]
    assert ids(await load_history(store, "thr", CTX, max_items=3)) == ["u2", "a3"]


async def test_thread_without_user_messages() -> None:
    store = await make_store([assistant(1), assistant(2)])
    assert ids(await load_history(store, "thr", CTX, max_items=1)) == ["a1", "a2"]


async def test_empty_and_foreign_threads() -> None:
    store = await make_store(THREAD)
    assert await load_history(store, "nope", CTX) == []
    assert await load_history(store, "thr", Ctx("mallory")) == []


def test_estimate_is_json_length_over_four_with_a_flat_cost_per_image() -> None:
    item = user(1)
    json_tokens = -(-len(item.model_dump_json(exclude_none=True, exclude={"attachments"})) // 4)
    assert estimate_item_tokens(item) == json_tokens
    with_files = item.model_copy(
        update={
            "attachments": [
                ImageAttachment(
                    id=f"atc_{i}",
                    name="a.png",
                    mime_type="image/png",
                    preview_url="data:image/png;base64," + "A" * 100_000,
                )
                for i in range(2)
            ]
        }
    )
    assert estimate_item_tokens(with_files) == json_tokens + 2 * ATTACHMENT_TOKEN_ESTIMATE
    generated = GeneratedImageItem(
        id="g",
        thread_id="thr",
        created_at=T0,
        image=GeneratedImage(id="img", url="data:image/png;base64," + "A" * 1_000_000),
    )
    assert estimate_item_tokens(generated) == ATTACHMENT_TOKEN_ESTIMATE + 16
    answer = assistant(2)
    assert estimate_item_tokens(answer) == -(-len(answer.model_dump_json(exclude_none=True)) // 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_items": 0}, "max_items must be an int >= 1, got 0"),
        ({"max_tokens": 0}, "max_tokens must be an int >= 1 or None, got 0"),
        ({"page_size": True}, "page_size must be an int >= 1, got True"),
    ],
)
async def test_invalid_arguments(kwargs: dict[str, Any], message: str) -> None:
    store = await make_store([])
    with pytest.raises(ValueError) as excinfo:
        await load_history(store, "thr", CTX, **kwargs)
    assert str(excinfo.value) == message


async def test_store_breaking_the_cursor_invariant_is_reported() -> None:
    class Broken(MemoryStore[Ctx]):
        async def load_thread_items(
            self, thread_id: str, after: str | None, limit: int, order: str, context: Ctx
        ) -> Page[ThreadItem]:
            return Page(data=[assistant(1)], has_more=True, after=None)

    with pytest.raises(RuntimeError, match="has_more=True without an `after` cursor"):
        await load_history(Broken(), "thr", CTX)
