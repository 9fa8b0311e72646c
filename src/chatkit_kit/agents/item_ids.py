"""Unique, stable ChatKit item ids for the events of an agent run.

Upstream's `stream_agent_response` uses the model's output item id as the ChatKit item id.
Chat Completions, LiteLLM and any-llm models in openai-agents give every output item the
placeholder id `__fake_id__`, so every answer of a thread would share one id and each new answer
would overwrite the previous one in the store (openai/chatkit-python#36). `unique_item_ids`
wraps the event stream and gives such items an id from `store.generate_item_id`, the same one
on all of their events, so the client and the store agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agents.models.fake_id import FAKE_RESPONSES_ID
from chatkit.store import NotFoundError, Store, StoreItemType
from chatkit.types import (
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemReplacedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
)

__all__ = ["FAKE_RESPONSES_ID", "unique_item_ids"]

_ID_TYPES: dict[str, StoreItemType] = {
    "assistant_message": "message",
    "user_message": "message",
    "client_tool_call": "tool_call",
    "widget": "message",
    "workflow": "workflow",
    "task": "task",
    "hidden_context_item": "message",
    "sdk_hidden_context": "sdk_hidden_context",
    "image_generation": "message",
}


async def unique_item_ids(
    events: AsyncIterator[ThreadStreamEvent],
    *,
    store: Store[Any],
    thread: ThreadMetadata,
    context: Any,
    check_thread: bool = True,
) -> AsyncIterator[ThreadStreamEvent]:
    """Yield `events` with every placeholder or colliding item id replaced by a fresh one.

    An item gets a fresh id from `store.generate_item_id` when its id is `__fake_id__`, when an
    earlier item of this run already used its id, or (with `check_thread`, one `load_item` per
    added item) when an item with its id is already stored in the thread. The new id is used on
    the item's added, updated, done, replaced and removed events. Items the run did not add
    (a workflow continued from the previous turn, a widget replaced in place) keep their ids.
    """
    fixer = _ItemIdFixer(store, thread, context, check_thread)
    async for event in events:
        for fixed in await fixer.fix(event):
            yield fixed


class _ItemIdFixer:
    def __init__(
        self, store: Store[Any], thread: ThreadMetadata, context: Any, check_thread: bool
    ) -> None:
        self.store = store
        self.thread = thread
        self.context = context
        self.check_thread = check_thread
        self.current: dict[str, str] = {}
        """Raw id -> the id its latest item got in this run."""
        self.issued: dict[str, list[str]] = {}
        """Raw id -> every id its items got in this run (for removals)."""
        self.used: set[str] = set()
        """Ids already given to an item of this run."""

    def _fresh(self, raw_id: str, item: ThreadItem) -> str:
        new_id = self.store.generate_item_id(
            _ID_TYPES.get(item.type, "message"), self.thread, self.context
        )
        self.current[raw_id] = new_id
        self.issued.setdefault(raw_id, []).append(new_id)
        return new_id

    async def _stored(self, item_id: str) -> bool:
        if not self.check_thread:
            return False
        try:
            await self.store.load_item(self.thread.id, item_id, self.context)
        except NotFoundError:
            return False
        return True

    def _keep(self, raw_id: str) -> str:
        self.current[raw_id] = raw_id
        self.issued.setdefault(raw_id, []).append(raw_id)
        return raw_id

    async def _id_for_added(self, item: ThreadItem) -> str:
        raw = item.id
        if raw == FAKE_RESPONSES_ID or raw in self.used or await self._stored(raw):
            return self._fresh(raw, item)
        return self._keep(raw)

    def _id_for_done(self, item: ThreadItem) -> str:
        raw = item.id
        if raw in self.current:
            return self.current[raw]
        if raw == FAKE_RESPONSES_ID:
            return self._fresh(raw, item)  # done without added (a client tool call)
        return raw

    async def fix(self, event: ThreadStreamEvent) -> list[ThreadStreamEvent]:
        if isinstance(event, ThreadItemAddedEvent):
            new_id = await self._id_for_added(event.item)
            self.used.add(new_id)
            return [_with_item_id(event, new_id)]
        if isinstance(event, (ThreadItemDoneEvent, ThreadItemReplacedEvent)):
            new_id = self._id_for_done(event.item)
            self.used.add(new_id)
            fixed = _with_item_id(event, new_id)
            if isinstance(event, ThreadItemDoneEvent):
                # A later item with the same raw id is a new item.
                self.current.pop(event.item.id, None)
            return [fixed]
        if isinstance(event, ThreadItemUpdatedEvent):
            new_id = self.current.get(event.item_id, event.item_id)
            if new_id == event.item_id:
                return [event]
            return [event.model_copy(update={"item_id": new_id})]
        if isinstance(event, ThreadItemRemovedEvent):
            ids = self.issued.pop(event.item_id, None)
            self.current.pop(event.item_id, None)
            if not ids:
                return [event]
            return [ThreadItemRemovedEvent(item_id=item_id) for item_id in ids]
        return [event]


def _with_item_id(
    event: ThreadItemAddedEvent | ThreadItemDoneEvent | ThreadItemReplacedEvent, item_id: str
) -> Any:
    if event.item.id == item_id:
        return event
    return event.model_copy(update={"item": event.item.model_copy(update={"id": item_id})})
