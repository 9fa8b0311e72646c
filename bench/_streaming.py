"""The streamed assistant message that the benches' ChatKit servers answer with."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from chatkit.store import Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)


async def streamed_message(
    store: Store[Any], thread: ThreadMetadata, context: Any, deltas: Sequence[str], text: str
) -> AsyncIterator[ThreadStreamEvent]:
    """One assistant message: added, one text delta event per `deltas`, done holding `text`."""
    reply = AssistantMessageItem(
        id=store.generate_item_id("message", thread, context),
        thread_id=thread.id,
        created_at=datetime.now(),
        content=[],
    )
    yield ThreadItemAddedEvent(item=reply)
    for delta in deltas:
        yield ThreadItemUpdatedEvent(
            item_id=reply.id,
            update=AssistantMessageContentPartTextDelta(content_index=0, delta=delta),
        )
    reply.content = [AssistantMessageContent(text=text)]
    yield ThreadItemDoneEvent(item=reply)


class StreamingResponder:
    """A ChatKit server mixin: `respond` streams one message of LOAD_DELTAS text deltas."""

    deltas = int(os.environ.get("LOAD_DELTAS", "8"))
    store: Store[Any]

    async def respond(
        self, thread: ThreadMetadata, item: UserMessageItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        words = [f"w{n}" for n in range(self.deltas)]
        deltas = [f"{word} " for word in words]
        async for event in streamed_message(self.store, thread, context, deltas, " ".join(words)):
            yield event
