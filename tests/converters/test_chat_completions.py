"""Attachments for Chat Completions models: no `file_url`, checked with openai-agents' own code.

The converter's output is run through openai-agents' Chat Completions converter
(`agents.models.chatcmpl_converter.Converter.items_to_messages`), and once end to end: an Agent
on `OpenAIChatCompletionsModel` whose OpenAI client talks HTTP to a loopback server standing in
for the Chat Completions endpoint, which records the request body.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    UserError,
    set_default_openai_api,
    set_tracing_disabled,
)
from agents.models._openai_shared import get_use_responses_by_default
from agents.models.chatcmpl_converter import Converter
from chatkit.types import (
    Attachment,
    FileAttachment,
    ImageAttachment,
    InferenceOptions,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
)
from openai import AsyncOpenAI

from chatkit_kit.converters import AttachmentAwareConverter, TagResolverRegistry, model_api_of
from tests.fixtures.context import Ctx

from ._scripted_model import ScriptedModel
from ._source import MemoryContentSource

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
PDF = b"%PDF-1.7\n" + b"1 0 obj\n" * 4
BIG_PDF = b"%PDF-1.7\n" + b"x" * 200


CTX = Ctx("alice")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def message(attachments: list[Attachment]) -> UserMessageItem:
    return UserMessageItem(
        id="msg_1",
        thread_id="thr_1",
        created_at=datetime(2026, 1, 2),
        content=[UserMessageTextContent(text="Look at these")],
        attachments=attachments,
        inference_options=InferenceOptions(),
    )


def attachments() -> list[Attachment]:
    return [
        ImageAttachment(
            id="img", name="cat.png", mime_type="image/png", preview_url="https://files.test/p"
        ),
        FileAttachment(id="doc", name="report.pdf", mime_type="application/pdf"),
        FileAttachment(id="big", name="scan.pdf", mime_type="application/pdf"),
    ]


@pytest.fixture
def source() -> MemoryContentSource:
    source = MemoryContentSource()
    source.put("alice", "img", PNG)
    source.put("alice", "doc", PDF)
    source.put("alice", "big", BIG_PDF)
    return source


def converter(source: MemoryContentSource, **options: Any) -> AttachmentAwareConverter:
    return AttachmentAwareConverter(source, CTX, file_inline_max_bytes=100, **options)


BIG_NOTE = {
    "type": "input_text",
    "text": (
        f'[Attachment "scan.pdf" (application/pdf) is not included: it is {len(BIG_PDF)} bytes, '
        "over the 100 byte inline limit, and Chat Completions models take files only inline.]"
    ),
}


async def test_responses_output_with_file_urls_is_rejected_by_the_chat_completions_converter(
    source: MemoryContentSource,
) -> None:
    # The problem this guards against: fine for the Responses API, fatal for Chat Completions.
    items = await converter(source, prefer_urls=True).to_agent_input([message(attachments())])
    parts = items[0]["content"]  # type: ignore[typeddict-item]
    doc_url = "https://files.test/alice/doc?expires_in=300"
    assert {"type": "input_file", "file_url": doc_url} in parts
    with pytest.raises(UserError, match="Only file_data or file_id is supported"):
        Converter.items_to_messages(items)


@pytest.mark.parametrize("prefer_urls", [False, True])
async def test_chat_completions_output_converts(
    source: MemoryContentSource, prefer_urls: bool
) -> None:
    chat = converter(source, prefer_urls=prefer_urls, model_api="chat_completions")
    items = await chat.to_agent_input([message(attachments())])
    parts = items[0]["content"]  # type: ignore[typeddict-item]
    assert all("file_url" not in part for part in parts)
    image_url = (
        "https://files.test/alice/img?expires_in=300"
        if prefer_urls
        else f"data:image/png;base64,{b64(PNG)}"
    )
    assert parts == [
        {"type": "input_text", "text": "Look at these"},
        {"type": "input_image", "detail": "auto", "image_url": image_url},
        {
            "type": "input_file",
            "filename": "report.pdf",
            "file_data": f"data:application/pdf;base64,{b64(PDF)}",
        },
        BIG_NOTE,
    ]
    # No download URL was asked for a PDF.
    assert ("url", "doc") not in source.calls and ("url", "big") not in source.calls

    messages = Converter.items_to_messages(items)
    assert messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look at these"},
                {"type": "image_url", "image_url": {"url": image_url, "detail": "auto"}},
                {
                    "type": "file",
                    "file": {
                        "file_data": f"data:application/pdf;base64,{b64(PDF)}",
                        "filename": "report.pdf",
                    },
                },
                {"type": "text", "text": BIG_NOTE["text"]},
            ],
        }
    ]


async def test_responses_api_still_sends_large_pdfs_by_url(source: MemoryContentSource) -> None:
    items = await converter(source).to_agent_input([message(attachments()[2:])])
    assert items[0]["content"][1] == {  # type: ignore[typeddict-item,index]
        "type": "input_file",
        "file_url": "https://files.test/alice/big?expires_in=300",
    }


async def test_file_url_parts_from_hooks_and_tag_resolvers_become_notes(
    source: MemoryContentSource,
) -> None:
    tags = TagResolverRegistry()

    @tags.resolver("contract")
    async def contract(tag: UserMessageTagContent, context: Any) -> Any:
        return {"type": "input_file", "file_url": f"https://docs.test/{tag.id}.pdf"}

    class ByUrl(AttachmentAwareConverter):
        async def attachment_to_message_content(self, attachment: Attachment) -> Any:
            return {"type": "input_file", "filename": attachment.name, "file_url": "https://x.test"}

    item = message(attachments()[1:2]).model_copy(
        update={
            "content": [
                UserMessageTagContent(id="c1", text="Lease", data={"type": "contract"}),
            ]
        }
    )
    for api, expect_urls in (("responses", True), ("chat_completions", False)):
        chat = ByUrl(source, CTX, tags=tags, model_api=api)  # type: ignore[arg-type]
        items = await chat.to_agent_input([item])
        parts = [part for entry in items for part in entry["content"]]  # type: ignore[typeddict-item]
        assert any("file_url" in part for part in parts) is expect_urls
        if not expect_urls:
            assert {
                "type": "input_text",
                "text": '[File "report.pdf" is not included: it is given by URL, and Chat '
                "Completions models take files only inline.]",
            } in parts
            assert {
                "type": "input_text",
                "text": "[A file is not included: it is given by URL, and Chat "
                "Completions models take files only inline.]",
            } in parts
            Converter.items_to_messages(items)  # accepted


def test_model_api_is_inferred_from_the_agents_model() -> None:
    client = AsyncOpenAI(api_key="test-key", base_url="http://127.0.0.1:9/v1")
    chat_model = OpenAIChatCompletionsModel(model="gpt-test", openai_client=client)
    responses_model = OpenAIResponsesModel(model="gpt-test", openai_client=client)
    assert model_api_of(chat_model) == "chat_completions"
    assert model_api_of(responses_model) == "responses"
    assert model_api_of(Agent(name="a", model=chat_model)) == "chat_completions"
    assert model_api_of("litellm/anthropic/claude") == "chat_completions"
    assert AttachmentAwareConverter(None, CTX, model_api=chat_model).model_api == "chat_completions"
    assert AttachmentAwareConverter(None, CTX).model_api == "responses"

    with pytest.raises(ValueError, match="cannot tell which API a ScriptedModel"):
        model_api_of(ScriptedModel([]))
    with pytest.raises(ValueError, match="cannot tell which API the model 'acme/m'"):
        model_api_of("acme/m")
    with pytest.raises(ValueError, match="model_api must be 'responses', 'chat_completions'"):
        AttachmentAwareConverter(None, CTX, model_api="completions")  # type: ignore[arg-type]


def test_model_names_follow_the_openai_default_api() -> None:
    was_responses = get_use_responses_by_default()
    try:
        set_default_openai_api("responses")
        assert model_api_of("gpt-4.1") == model_api_of(None) == "responses"
        set_default_openai_api("chat_completions")
        assert model_api_of(Agent(name="a", model="openai/gpt-4.1")) == "chat_completions"
        assert model_api_of(None) == "chat_completions"
    finally:
        set_default_openai_api("responses" if was_responses else "chat_completions")


# --- end to end over HTTP ---------------------------------------------------------------------


class _ChatCompletionsEndpoint(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:  # the http.server hook name
        length = int(self.headers["Content-Length"])
        self.bodies.append(json.loads(self.rfile.read(length)))
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-test",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Got them."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        payload = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []
    handler = type("Handler", (_ChatCompletionsEndpoint,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_an_agent_on_a_chat_completions_model_gets_the_files_inline(
    source: MemoryContentSource, endpoint: tuple[str, list[dict[str, Any]]]
) -> None:
    set_tracing_disabled(True)
    base_url, bodies = endpoint
    client = AsyncOpenAI(api_key="test-key", base_url=base_url, max_retries=0)
    agent = Agent(
        name="Assistant",
        instructions="Be helpful.",
        model=OpenAIChatCompletionsModel(model="gpt-test", openai_client=client),
    )

    # With the API inferred from the agent, the request goes through.
    chat = converter(source, prefer_urls=True, model_api=model_api_of(agent))
    result = await Runner.run(agent, await chat.to_agent_input([message(attachments())]))
    assert result.final_output == "Got them."
    [body] = bodies
    user = body["messages"][1]
    assert user["role"] == "user"
    assert [part["type"] for part in user["content"]] == ["text", "image_url", "file", "text"]
    assert user["content"][2]["file"] == {
        "file_data": f"data:application/pdf;base64,{b64(PDF)}",
        "filename": "report.pdf",
    }
    assert "take files only inline" in user["content"][3]["text"]

    # Stated as the Responses API, the same app would fail before any request is sent.
    responses = converter(source, prefer_urls=True, model_api="responses")
    with pytest.raises(UserError, match="Only file_data or file_id is supported"):
        await Runner.run(agent, await responses.to_agent_input([message(attachments())]))
    assert len(bodies) == 1
