"""`ChatKitTestClient` against our endpoint over real HTTP (uvicorn on loopback): every request
type, SSE parsed into upstream's events, and uploads with both ChatKit strategies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, RunContextWrapper, function_tool, set_tracing_disabled
from chatkit.agents import AgentContext, ClientToolCall
from chatkit.server import ChatKitServer
from chatkit.types import (
    AssistantMessageItem,
    AudioInput,
    ClientToolCallItem,
    ThreadMetadata,
    ThreadStreamEvent,
    TranscriptionResult,
    UserMessageItem,
)
from starlette.requests import Request

from chatkit_kit.agents import agent_turn
from chatkit_kit.asgi import chatkit_app
from chatkit_kit.attachments import (
    DirectUploadAttachmentStore,
    LocalBlobStorage,
    S3AttachmentStore,
    StoreWithAttachments,
)
from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import (
    ChatKitHTTPError,
    ChatKitTestClient,
    ScriptedOpenAI,
    ToolCall,
    parse_sse,
)
from chatkit_kit.testing import requests as req
from tests.fixtures.context import Ctx
from tests.fixtures.servers import Serve

set_tracing_disabled(True)


async def bearer(request: Request) -> Ctx:
    auth = request.headers.get("authorization", "")
    return Ctx(auth.removeprefix("Bearer ") or "anonymous")


@function_tool
async def pick_color(wrapper: RunContextWrapper[AgentContext[Ctx]], prompt: str) -> str:
    """Ask the user's browser for a color (a client tool)."""
    wrapper.context.client_tool_call = ClientToolCall(name="pick_color", arguments={"p": prompt})
    return "asked the client"


class AgentServer(ChatKitServer[Ctx]):
    def __init__(self, store: Any, attachments: Any, llm: ScriptedOpenAI) -> None:
        super().__init__(store, attachments)
        self.attachments = attachments
        self.agent = Agent(
            name="A", model=llm.model, tools=[pick_color], tool_use_behavior="stop_on_first_tool"
        )

    def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        return agent_turn(
            self.agent,
            thread,
            input_user_message,
            context,
            store=self.store,
            attachments=self.attachments,
        )

    async def transcribe(self, audio_input: AudioInput, context: Ctx) -> TranscriptionResult:
        return TranscriptionResult(
            text=f"{len(audio_input.data)} bytes of {audio_input.media_type}"
        )


@pytest.fixture
def direct_app(tmp_path: Path) -> tuple[Any, ScriptedOpenAI]:
    store: MemoryStore[Ctx] = MemoryStore()
    uploads = DirectUploadAttachmentStore(
        store, LocalBlobStorage(tmp_path), base_url="http://placeholder/chatkit"
    )
    llm = ScriptedOpenAI(api="chat_completions")
    server = AgentServer(StoreWithAttachments(store, uploads), uploads, llm)
    return chatkit_app(server, bearer, uploads=uploads), llm


async def test_every_request_type_over_http(
    serve: Serve, direct_app: tuple[Any, ScriptedOpenAI]
) -> None:
    app, llm = direct_app
    live = await serve(app)
    llm.extend(
        [
            "Hello Alice.",
            ToolCall("pick_color", {"prompt": "favourite?"}),
            "Blue it is.",
            "Hello again.",
        ]
    )
    headers = {"Authorization": "Bearer alice"}
    async with ChatKitTestClient(live.base_url, headers=headers) as chat:
        first = await chat.create_thread("Hi", quoted_text="earlier words", model="m1")
        thread_id = first.thread_id
        assert first.types[:2] == ["thread.created", "thread.item.done"]
        assert first.assistant_text == "Hello Alice."

        ask = await chat.add_user_message(thread_id, "pick a color")
        [tool_call] = [i for i in ask.done_items if isinstance(i, ClientToolCallItem)]
        assert tool_call.status == "pending" and tool_call.id != "__fake_id__"
        answered = await chat.add_client_tool_output(thread_id, {"color": "blue"})
        assert answered.assistant_text == "Blue it is."
        # The model saw the call and its output.
        assert {"role": "tool", "tool_call_id": "call_1", "content": '{"color": "blue"}'} in (
            llm.inputs[-1]
        )

        items = await chat.all_items(thread_id)
        retried = await chat.retry_after_item(thread_id, items[0].id)
        assert retried.assistant_text == "Hello again."
        items = await chat.all_items(thread_id)
        assert len(items) == 2  # the first question and its new answer
        assistant = [i for i in items if isinstance(i, AssistantMessageItem)]

        page = await chat.list_threads(limit=10)
        assert [t.id for t in page.data] == [thread_id]
        renamed = await chat.update_thread(thread_id, "Colors")
        assert renamed.title == (await chat.get_thread(thread_id)).title == "Colors"
        await chat.feedback(thread_id, [assistant[0].id], "positive")

        assert (await chat.transcribe(b"\x00" * 7, "audio/webm")).text == "7 bytes of audio/webm"

        with pytest.raises(ChatKitHTTPError) as refused:
            await chat.sync_custom_action(thread_id, "noop", item_id=assistant[0].id)
        assert refused.value.status == 400
        action = await chat.custom_action(thread_id, "noop", {"x": 1})
        assert action.errors and not action.assistant_messages  # action() not implemented

        with pytest.raises(ChatKitHTTPError) as wrong_user:
            async with ChatKitTestClient(
                live.base_url, headers={"Authorization": "Bearer bob"}
            ) as bob:
                await bob.get_thread(thread_id)
        assert wrong_user.value.status == 404

        await chat.delete_thread(thread_id)
        assert (await chat.list_threads()).data == []
    assert llm.remaining == 0


async def test_direct_upload_then_a_message_with_it(
    serve: Serve, direct_app: tuple[Any, ScriptedOpenAI]
) -> None:
    app, llm = direct_app
    live = await serve(app)
    llm.extend(["Read it."])
    async with ChatKitTestClient(live.base_url, headers={"Authorization": "Bearer alice"}) as chat:
        attachment = await chat.upload(
            "notes.txt", b"remember the milk", "text/plain", strategy="direct"
        )
        assert attachment.name == "notes.txt"
        turn = await chat.create_thread("see file", attachments=[attachment])
        assert turn.assistant_text == "Read it."
        parts = llm.inputs[0][0]["content"]
        assert any("remember the milk" in part.get("text", "") for part in parts)
        with pytest.raises(ChatKitHTTPError):
            await chat.upload("notes.txt", b"x", "text/plain")  # no two-phase on this backend
        await chat.delete_attachment(attachment.id)


async def test_two_phase_upload_to_s3(serve: Serve, s3_client: Any, bucket: str) -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    s3 = S3AttachmentStore(store, client=s3_client, bucket=bucket)
    llm = ScriptedOpenAI(["A pixel."], api="responses")
    server = AgentServer(StoreWithAttachments(store, s3), s3, llm)
    live = await serve(chatkit_app(server, bearer))
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
    async with ChatKitTestClient(live.base_url, headers={"Authorization": "Bearer alice"}) as chat:
        attachment = await chat.upload("dot.png", png, "image/png")
        assert attachment.upload_descriptor is not None
        turn = await chat.create_thread("what is this?", attachments=[attachment.id])
        assert turn.assistant_text == "A pixel."
    image = llm.inputs[0][0]["content"][1]
    assert image["type"] == "input_image" and image["image_url"].startswith("data:image/png")


def test_parse_sse_reads_data_frames_and_skips_comments() -> None:
    body = (
        b": keepalive\n\n"
        b'data: {"type": "stream_options", "stream_options": {"allow_cancel": true}}\n\n'
        b'data: {"type": "error", "code": "custom",\n'
        b'data: "message": "x", "allow_retry": false}\n\n'
    )
    events = parse_sse(body)
    assert [e.type for e in events] == ["stream_options", "error"]


def test_builders_make_upstream_wire_json() -> None:
    assert req.create_thread("hi").model_dump(mode="json", exclude_none=True) == {
        "type": "threads.create",
        "metadata": {},
        "params": {
            "input": {
                "content": [{"type": "input_text", "text": "hi"}],
                "attachments": [],
                "inference_options": {},
            }
        },
    }
    answers = req.add_structured_input("thr_1", "itm_1", {"q1": ["a"], "q2": None})
    assert answers.params.input.answers["q2"].skipped is True
