"""Widget items with store ids, and persisted widget updates from action() and sync_action()."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Any, Literal

import pytest
from chatkit.actions import Action
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.store import StoreItemType
from chatkit.types import (
    SyncCustomActionResponse,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
    WidgetItem,
)
from chatkit.widgets import DynamicWidgetRoot
from pydantic import BaseModel

from chatkit_kit.stores import MemoryStore
from chatkit_kit.widgets import (
    confirmation_card,
    new_widget_item,
    parse_action,
    replace_widget,
    replace_widget_for_sync_action,
    stream_widget_item,
    widget_done_event,
)
from tests.fixtures.context import Ctx

CTX = Ctx("alice")
THREAD = ThreadMetadata(id="thr_1", created_at=datetime(2026, 1, 1))


class NumberedStore(MemoryStore[Ctx]):
    """Generates predictable item ids, to show the helpers use the store's generator."""

    def __init__(self) -> None:
        super().__init__()
        self.counter = 0

    def generate_item_id(
        self, item_type: StoreItemType, thread: ThreadMetadata, context: Any
    ) -> str:
        self.counter += 1
        return f"{item_type}_{thread.id}_{context.user_id}_{self.counter}"


def card(text: str) -> DynamicWidgetRoot:
    return DynamicWidgetRoot.model_validate(
        {"type": "Card", "children": [{"type": "Text", "id": "t", "value": text}]}
    )


def test_new_widget_item_uses_the_store_id() -> None:
    store = NumberedStore()
    item = new_widget_item(store, THREAD, card("Hi"), CTX, copy_text="Hi")
    assert item.id == "message_thr_1_alice_1"
    assert item.thread_id == "thr_1"
    assert item.copy_text == "Hi"
    assert item.widget == card("Hi")
    event = widget_done_event(store, THREAD, card("Hi"), CTX)
    assert isinstance(event, ThreadItemDoneEvent)
    assert event.item.id == "message_thr_1_alice_2"


async def test_stream_widget_item_uses_the_store_id() -> None:
    store = NumberedStore()
    static = [e async for e in stream_widget_item(store, THREAD, card("a"), CTX, copy_text="a")]
    assert len(static) == 1 and isinstance(static[0], ThreadItemDoneEvent)
    assert static[0].item.id == "message_thr_1_alice_1"

    async def states() -> AsyncGenerator[DynamicWidgetRoot, None]:
        yield card("He")
        yield card("Hello")

    events = [e async for e in stream_widget_item(store, THREAD, states(), CTX)]
    assert [type(e) for e in events] == [
        ThreadItemAddedEvent,
        ThreadItemUpdatedEvent,
        ThreadItemDoneEvent,
    ]
    assert events[0].item.id == events[1].item_id == events[2].item.id == "message_thr_1_alice_2"  # type: ignore[union-attr]


async def test_replace_widget_saves_and_keeps_identity() -> None:
    store = NumberedStore()
    await store.save_thread(THREAD, CTX)
    original = new_widget_item(store, THREAD, card("old"), CTX, copy_text="old")
    await store.add_thread_item(THREAD.id, original, CTX)
    event = await replace_widget(store, THREAD, original, card("new"), CTX)
    assert isinstance(event.item, WidgetItem)
    assert event.item.id == original.id
    assert event.item.created_at == original.created_at
    assert event.item.copy_text == "old"
    assert await store.load_item(THREAD.id, original.id, CTX) == event.item

    response = await replace_widget_for_sync_action(
        store, THREAD, original, card("newer"), CTX, copy_text=None
    )
    assert isinstance(response, SyncCustomActionResponse)
    stored = await store.load_item(THREAD.id, original.id, CTX)
    assert stored == response.updated_item
    assert isinstance(stored, WidgetItem) and stored.copy_text is None
    assert stored.widget == card("newer")


async def test_replace_widget_rejects_items_of_another_thread() -> None:
    store = NumberedStore()
    other = new_widget_item(
        store, ThreadMetadata(id="thr_2", created_at=datetime(2026, 1, 1)), card("x"), CTX
    )
    with pytest.raises(ValueError, match="belongs to thread 'thr_2', not to thread 'thr_1'"):
        await replace_widget(store, THREAD, other, card("y"), CTX)


class Vote(BaseModel):
    option: str


class VoteAction(Action[Literal["poll.vote"], Vote]):
    pass


class PollServer(ChatKitServer[Ctx]):
    async def respond(
        self, thread: ThreadMetadata, input: UserMessageItem | None, context: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        yield widget_done_event(
            self.store,
            thread,
            confirmation_card(title="Vote?", confirm=VoteAction.create(Vote(option="yes"))),
            context,
        )

    async def action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: Ctx,
    ) -> AsyncIterator[ThreadStreamEvent]:
        vote = parse_action(action, VoteAction)
        assert vote is not None and sender is not None
        yield await replace_widget(
            self.store, thread, sender, card(f"You voted {vote.payload.option}"), context
        )

    async def sync_action(
        self,
        thread: ThreadMetadata,
        action: Action[str, Any],
        sender: WidgetItem | None,
        context: Ctx,
    ) -> SyncCustomActionResponse:
        vote = parse_action(action, VoteAction)
        assert vote is not None and sender is not None
        return await replace_widget_for_sync_action(
            self.store, thread, sender, card(f"Synced {vote.payload.option}"), context
        )


async def stream(server: PollServer, request: dict[str, Any]) -> list[dict[str, Any]]:
    result = await server.process(json.dumps(request), CTX)
    assert isinstance(result, StreamingResult)
    return [json.loads(chunk[len(b"data: ") :]) async for chunk in result]


async def test_updates_from_action_and_sync_action_survive_a_reload() -> None:
    store = NumberedStore()
    server = PollServer(store)
    events = await stream(
        server,
        {
            "type": "threads.create",
            "params": {
                "input": {
                    "content": [{"type": "input_text", "text": "poll"}],
                    "attachments": [],
                    "inference_options": {},
                }
            },
        },
    )
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    widget_id = next(
        e["item"]["id"]
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "widget"
    )
    action = {"type": "poll.vote", "payload": {"option": "yes"}}

    events = await stream(
        server,
        {
            "type": "threads.custom_action",
            "params": {"thread_id": thread_id, "item_id": widget_id, "action": action},
        },
    )
    assert [e["type"] for e in events if e["type"] != "stream_options"] == ["thread.item.replaced"]
    stored = await store.load_item(thread_id, widget_id, CTX)
    assert isinstance(stored, WidgetItem)
    assert stored.widget == card("You voted yes")

    result = await server.process(
        json.dumps(
            {
                "type": "threads.sync_custom_action",
                "params": {"thread_id": thread_id, "item_id": widget_id, "action": action},
            }
        ),
        CTX,
    )
    assert isinstance(result, NonStreamingResult)
    body = json.loads(result.json)
    assert body["updated_item"]["id"] == widget_id
    assert body["updated_item"]["widget"]["children"][0]["value"] == "Synced yes"
    stored = await store.load_item(thread_id, widget_id, CTX)
    assert isinstance(stored, WidgetItem)
    assert stored.widget == card("Synced yes")
    page = await store.load_thread_items(thread_id, None, 10, "asc", CTX)
    assert [item.id for item in page.data] == [page.data[0].id, widget_id]


async def test_sync_replace_widget_is_a_deprecated_alias() -> None:
    from chatkit_kit.widgets import sync_replace_widget

    store = NumberedStore()
    await store.save_thread(THREAD, CTX)
    original = new_widget_item(store, THREAD, card("old"), CTX)
    await store.add_thread_item(THREAD.id, original, CTX)
    with pytest.warns(DeprecationWarning, match="use replace_widget_for_sync_action") as caught:
        response = await sync_replace_widget(store, THREAD, original, card("new"), CTX)
    assert caught[0].filename == __file__  # the warning points at the caller
    assert response.updated_item == await store.load_item(THREAD.id, original.id, CTX)
    assert isinstance(response.updated_item, WidgetItem)
    assert response.updated_item.widget == card("new")
