"""An openai-agents Agent behind ChatKitServer.process, with a scripted model (no network, no key).

Asserts that history, attachment contents and resolved tags reach the model input, in order.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from agents import Agent, Runner, set_tracing_disabled
from chatkit.agents import AgentContext, stream_agent_response
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.types import (
    FileAttachment,
    ImageAttachment,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
    UserMessageTagContent,
)

from chatkit_kit.converters import (
    MENTIONS_HEADER,
    AttachmentAwareConverter,
    TagResolverRegistry,
    load_history,
)
from chatkit_kit.stores import MemoryStore

from ._scripted_model import ScriptedModel
from ._source import MemoryContentSource

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 16


@dataclass
class RequestContext:
    user_id: str


@pytest.fixture(autouse=True)
def _no_tracing() -> Iterator[None]:
    set_tracing_disabled(True)
    yield


class AppServer(ChatKitServer[RequestContext]):
    def __init__(
        self,
        store: MemoryStore[RequestContext],
        source: MemoryContentSource,
        model: ScriptedModel,
        tags: TagResolverRegistry,
    ) -> None:
        super().__init__(store)
        self.source = source
        self.tags = tags
        self.agent = Agent[AgentContext[RequestContext]](
            name="Assistant", instructions="Be helpful.", model=model
        )

    async def respond(
        self, thread: ThreadMetadata, input: UserMessageItem | None, context: RequestContext
    ) -> AsyncIterator[ThreadStreamEvent]:
        agent_context: AgentContext[RequestContext] = AgentContext(
            thread=thread, store=self.store, request_context=context
        )
        history = await load_history(self.store, thread.id, context, max_items=30)
        converter = AttachmentAwareConverter(self.source, context, tags=self.tags)
        input_items = await converter.to_agent_input(history)
        result = Runner.run_streamed(self.agent, input_items, context=agent_context)
        async for event in stream_agent_response(agent_context, result):
            yield event


async def run(server: AppServer, request: dict[str, Any], ctx: RequestContext) -> list[Any]:
    result = await server.process(json.dumps(request), ctx)
    assert isinstance(result, StreamingResult)
    events = []
    async for chunk in result:
        assert chunk.startswith(b"data: ")
        events.append(json.loads(chunk[len(b"data: ") :]))
    return events


def text(value: str) -> dict[str, Any]:
    return {"type": "input_text", "text": value}


async def test_history_attachments_and_tags_reach_the_model_in_order() -> None:
    ctx = RequestContext(user_id="alice")
    store: MemoryStore[RequestContext] = MemoryStore()
    source = MemoryContentSource()
    tags = TagResolverRegistry()

    @tags.resolver("customer")
    async def customer(tag: UserMessageTagContent, context: RequestContext) -> str:
        return f"Customer {tag.text}: 12 open orders (visible to {context.user_id})"

    # Two attachments uploaded earlier: metadata in the store, bytes in the backend.
    await store.save_attachment(
        ImageAttachment(
            id="atc_img", name="chart.png", mime_type="image/png", preview_url="https://p.test/1"
        ),
        ctx,
    )
    await store.save_attachment(
        FileAttachment(id="atc_txt", name="notes.md", mime_type="text/markdown"), ctx
    )
    source.put("alice", "atc_img", PNG)
    source.put("alice", "atc_txt", b"# Notes\nShip on Friday.\n")

    model = ScriptedModel(["The chart shows growth.", "Acme ships Friday."])
    server = AppServer(store, source, model, tags)

    events = await run(
        server,
        {
            "type": "threads.create",
            "params": {
                "input": {
                    "content": [{"type": "input_text", "text": "What does this show?"}],
                    "attachments": ["atc_img", "atc_txt"],
                    "inference_options": {},
                }
            },
        },
        ctx,
    )
    assert not [e for e in events if e["type"] == "error"], events
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    done = [e["item"] for e in events if e["type"] == "thread.item.done"]
    assert [d["type"] for d in done] == ["user_message", "assistant_message"]
    assert done[1]["content"][0]["text"] == "The chart shows growth."

    events = await run(
        server,
        {
            "type": "threads.add_user_message",
            "params": {
                "thread_id": thread_id,
                "input": {
                    "content": [
                        {"type": "input_text", "text": "When does "},
                        {
                            "type": "input_tag",
                            "id": "cus_1",
                            "text": "Acme",
                            "data": {"type": "customer"},
                        },
                        {"type": "input_text", "text": " ship?"},
                    ],
                    "attachments": [],
                    "quoted_text": "Ship on Friday.",
                    "inference_options": {},
                },
            },
        },
        ctx,
    )
    assert not [e for e in events if e["type"] == "error"], events

    first_user_message = {
        "role": "user",
        "type": "message",
        "content": [
            text("What does this show?"),
            {
                "type": "input_image",
                "detail": "auto",
                "image_url": "data:image/png;base64," + base64.b64encode(PNG).decode(),
            },
            text(
                '<attachment name="notes.md" type="text/markdown">\n'
                "# Notes\nShip on Friday.\n\n</attachment>"
            ),
        ],
    }
    assert model.inputs[0] == [first_user_message]
    assert model.inputs[1] == [
        first_user_message,
        {
            "type": "message",
            "role": "assistant",
            "content": "The chart shows growth.",
        },
        {"role": "user", "type": "message", "content": [text("When does @Acme ship?")]},
        {
            "role": "user",
            "type": "message",
            "content": [text("The user is referring to this in particular: \nShip on Friday.")],
        },
        {
            "role": "user",
            "type": "message",
            "content": [
                text(MENTIONS_HEADER),
                text("Customer Acme: 12 open orders (visible to alice)"),
            ],
        },
    ]
    assert model.instructions == ["Be helpful.", "Be helpful."]

    # Everything the model saw is persisted: 2 user messages and 2 assistant messages.
    page = await store.load_thread_items(thread_id, None, 10, "asc", ctx)
    assert [item.type for item in page.data] == [
        "user_message",
        "assistant_message",
        "user_message",
        "assistant_message",
    ]
    # The attachments were read once per turn, through the request's owner.
    assert source.calls == [("read", "atc_img"), ("read", "atc_txt")] * 2
