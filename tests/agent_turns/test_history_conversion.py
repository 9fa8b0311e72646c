"""History converts for both model APIs, in whole turns, checked by openai-agents' own code.

Generated threads (10+ turns: assistant messages, client tool calls with outputs, widgets,
hidden context, attachments, tags, workflows, images, ...) are converted by
`AttachmentAwareConverter` and sent through the real `OpenAIResponsesModel` and
`OpenAIChatCompletionsModel` (openai-agents' Responses and Chat Completions converters) to a
mocked HTTP endpoint; the request bodies must then have the shapes those APIs take.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from agents import Agent, Runner, UserError, set_tracing_disabled
from agents.models.chatcmpl_converter import Converter
from chatkit.agents import ThreadItemConverter
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ImageAttachment,
    InferenceOptions,
    ThreadItem,
    UserMessageItem,
    UserMessageTextContent,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionMessageParam
from openai.types.responses import ResponseInputItemParam
from pydantic import TypeAdapter

from chatkit_kit.converters import AttachmentAwareConverter
from chatkit_kit.testing import ScriptedOpenAI
from chatkit_kit.testing import strategies as kit
from tests.converters._source import MemoryContentSource
from tests.fixtures.context import Ctx

set_tracing_disabled(True)

CTX = Ctx("alice")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
T0 = datetime(2026, 1, 1)


def user(text: str, n: int = 0) -> UserMessageItem:
    return UserMessageItem(
        id=f"msg_u{n}",
        thread_id="thr_1",
        created_at=T0 + timedelta(seconds=n),
        content=[UserMessageTextContent(text=text)],
        attachments=[],
        inference_options=InferenceOptions(),
    )


def assistant(text: str, n: int = 0) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=f"msg_a{n}",
        thread_id="thr_1",
        created_at=T0 + timedelta(seconds=n),
        content=[AssistantMessageContent(text=text)],
    )


async def test_turn_two_on_chat_completions_fails_with_upstream_and_converts_with_ours() -> None:
    history: list[ThreadItem] = [user("q1", 1), assistant("first answer", 2), user("q2", 3)]
    upstream = await ThreadItemConverter().to_agent_input(history)
    with pytest.raises(UserError, match=r"Unknown content: .*'type': 'output_text'"):
        Converter.items_to_messages(upstream)

    ours = await AttachmentAwareConverter(None, CTX, model_api="chat_completions").to_agent_input(
        history
    )
    assert Converter.items_to_messages(ours) == [
        {"role": "user", "content": [{"type": "text", "text": "q1"}]},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "q2"}]},
    ]
    assert ours[1] == {"type": "message", "role": "assistant", "content": "first answer"}


async def test_empty_answers_are_left_out_and_parts_are_joined() -> None:
    empty = assistant("", 2).model_copy(update={"content": []})
    two = assistant("", 3).model_copy(
        update={"content": [AssistantMessageContent(text="a"), AssistantMessageContent(text="b")]}
    )
    items = await AttachmentAwareConverter(None, CTX).to_agent_input([user("q", 1), empty, two])
    assert items[1:] == [{"type": "message", "role": "assistant", "content": "a\n\nb"}]


# --- generated threads --------------------------------------------------------------------------

_OTHER_KINDS = [make for name, make in kit.item_kinds().items() if name != "user_message"]


@st.composite
def threads(draw: st.DrawFn, min_turns: int = 10, max_turns: int = 14) -> list[ThreadItem]:
    """Whole turns: a user message, then any mix of the other item types."""
    items: list[ThreadItem] = []
    for turn in range(draw(st.integers(min_turns, max_turns))):
        n = len(items)
        items.append(draw(kit.user_message_items(ids=st.just(f"msg_u{turn}"))))
        for index, make in enumerate(draw(st.lists(st.sampled_from(_OTHER_KINDS), max_size=4))):
            items.append(draw(make(ids=st.just(f"itm_{turn}_{index}"))))
        for offset, item in enumerate(items[n:]):
            item.created_at = T0 + timedelta(seconds=n + offset)
    return items


def source_for(items: list[ThreadItem]) -> MemoryContentSource:
    source = MemoryContentSource()
    for item in items:
        if isinstance(item, UserMessageItem):
            for attachment in item.attachments:
                if isinstance(attachment, ImageAttachment):
                    source.put(CTX.user_id, attachment.id, PNG)
                else:
                    source.put(CTX.user_id, attachment.id, b"some text\n")
    return source


_RESPONSES_INPUT: TypeAdapter[list[ResponseInputItemParam]] = TypeAdapter(
    list[ResponseInputItemParam]
)
_CHAT_MESSAGES: TypeAdapter[list[ChatCompletionMessageParam]] = TypeAdapter(
    list[ChatCompletionMessageParam]
)


def check_responses_input(body_input: list[dict[str, Any]]) -> None:
    _RESPONSES_INPUT.validate_python(body_input)
    calls: set[str] = set()
    for entry in body_input:
        kind = entry.get("type", "message")
        if kind == "message":
            assert entry["role"] in ("user", "assistant", "system", "developer")
            content = entry["content"]
            if entry["role"] == "assistant":
                # The Responses API takes a string or output_text/refusal parts here.
                assert isinstance(content, str) or all(
                    part["type"] in ("output_text", "refusal") for part in content
                ), entry
            else:
                assert isinstance(content, list) and content, entry
                for part in content:
                    assert part["type"] in ("input_text", "input_image", "input_file"), part
                    if part["type"] == "input_file":
                        assert part.get("file_data") or part.get("file_url"), part
        elif kind == "function_call":
            calls.add(entry["call_id"])
            assert isinstance(entry["arguments"], str)
        elif kind == "function_call_output":
            assert entry["call_id"] in calls, "an output without its call"
        else:
            raise AssertionError(f"unexpected input item {entry}")


def check_chat_messages(messages: list[dict[str, Any]]) -> None:
    _CHAT_MESSAGES.validate_python(messages)
    assert messages[0]["role"] == "system"
    open_calls: set[str] = set()
    for message in messages[1:]:
        role = message["role"]
        assert role in ("user", "assistant", "tool"), message
        if role == "assistant":
            assert message.get("content") is not None or message.get("tool_calls"), message
            open_calls |= {call["id"] for call in message.get("tool_calls", [])}
        elif role == "tool":
            assert message["tool_call_id"] in open_calls, "a tool message without its call"
        else:
            for part in message["content"]:
                assert part["type"] in ("text", "image_url", "file"), part


async def _send(api: Any, model_input: list[Any]) -> dict[str, Any]:
    llm = ScriptedOpenAI(["ok"], api=api)
    try:
        await Runner.run(Agent(name="A", instructions="Answer.", model=llm.model), model_input)
    finally:
        await llm.aclose()
    [body] = llm.requests
    return body


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
@given(items=threads())
async def test_generated_threads_convert_for_both_model_apis(items: list[ThreadItem]) -> None:
    source = source_for(items)
    for api in ("responses", "chat_completions"):
        converter = AttachmentAwareConverter(source, CTX, model_api=api)
        model_input = await converter.to_agent_input(items)
        body = await _send(api, model_input)
        if api == "responses":
            check_responses_input(body["input"])
        else:
            check_chat_messages(body["messages"])
    # Every user turn reached the model, in order.
    users = [item for item in items if isinstance(item, UserMessageItem)]
    texts = [
        m["content"][0]["text"] for m in body["messages"] if m["role"] == "user" and m["content"]
    ]
    typed = [
        "".join(
            getattr(p, "text", "") if p.type == "input_text" else f"@{p.text}" for p in u.content
        )
        for u in users
    ]
    assert [t for t in texts if t in typed] == typed
