"""How the demo answers: an openai-agents Agent when a key is set, else an offline responder."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartAdded,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
)

if TYPE_CHECKING:  # pragma: no cover
    from agents import Agent

    from .app import DemoServer

Responder = Callable[
    ["DemoServer", ThreadMetadata, "UserMessageItem | None", Any], AsyncIterator[ThreadStreamEvent]
]
"""Produces the events that answer one user message."""


def user_text(item: UserMessageItem | None) -> str:
    """The plain text of a user message (tags rendered as @text)."""
    if item is None:
        return ""
    parts = []
    for part in item.content:
        if isinstance(part, UserMessageTextContent):
            parts.append(part.text)
        elif isinstance(part, UserMessageTagContent):
            parts.append(f"@{part.text}")
    return "".join(parts).strip()


def offline_reply_text(item: UserMessageItem | None) -> str:
    """The offline responder's deterministic answer to `item`."""
    text = user_text(item)
    reply = f'You said: "{text}".' if text else "You sent a message without text."
    if item is not None and item.attachments:
        names = ", ".join(f'"{attachment.name}"' for attachment in item.attachments)
        reply += f" Attachments received: {names}."
    return reply + " (Offline demo responder: set OPENAI_API_KEY for real answers.)"


async def offline_responder(
    server: DemoServer, thread: ThreadMetadata, item: UserMessageItem | None, context: Any
) -> AsyncIterator[ThreadStreamEvent]:
    """Stream a deterministic assistant message that echoes the text and attachment names."""
    reply = offline_reply_text(item)
    message = AssistantMessageItem(
        id=server.store.generate_item_id("message", thread, context),
        thread_id=thread.id,
        created_at=datetime.now(),
        content=[],
    )
    yield ThreadItemAddedEvent(item=message)
    yield ThreadItemUpdatedEvent(
        item_id=message.id,
        update=AssistantMessageContentPartAdded(
            content_index=0, content=AssistantMessageContent(text="")
        ),
    )
    for word in reply.split(" "):
        yield ThreadItemUpdatedEvent(
            item_id=message.id,
            update=AssistantMessageContentPartTextDelta(content_index=0, delta=word + " "),
        )
    message.content = [AssistantMessageContent(text=reply)]
    yield ThreadItemDoneEvent(item=message)


def agent_responder(agent: Agent[Any]) -> Responder:
    """Answer with `agent` through `chatkit_kit.agents.agent_turn` (history, attachments, ids)."""

    def respond(
        server: DemoServer, thread: ThreadMetadata, item: UserMessageItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        from ..agents import HistoryWindow, agent_turn

        return agent_turn(
            agent,
            thread,
            item,
            context,
            store=server.store,
            attachments=server.attachment_source,
            history=HistoryWindow(max_items=40),
        )

    return respond
