"""`agent_turn`: history, conversion, run, unique ids, guardrails, errors and cancellation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    RunContextWrapper,
    function_tool,
    input_guardrail,
    output_guardrail,
    set_tracing_disabled,
)
from chatkit.agents import AgentContext
from chatkit.server import StreamingResult
from chatkit.types import (
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    SDKHiddenContextItem,
    ThreadItemAddedEvent,
    ThreadItemRemovedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)

from chatkit_kit.agents import (
    INPUT_GUARDRAIL_MESSAGE,
    OUTPUT_GUARDRAIL_MESSAGE,
    HistoryWindow,
    agent_turn,
)
from chatkit_kit.testing import APIFailure, ScriptedOpenAI, Text, ToolCall, parse_sse
from chatkit_kit.testing import requests as req
from tests.fixtures.context import Ctx

from ._app import FunctionServer, client_for

set_tracing_disabled(True)

APIS = ["responses", "chat_completions"]


def turn_server(agent: Agent[Any], **options: Any) -> FunctionServer:
    def respond(
        server: FunctionServer, thread: ThreadMetadata, item: UserMessageItem | None, ctx: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        return agent_turn(agent, thread, item, ctx, store=server.store, **options)

    return FunctionServer(respond)


lookups: list[str] = []


@function_tool
async def lookup_order(wrapper: RunContextWrapper[AgentContext[Ctx]], order_id: str) -> str:
    """Look up an order of the current user."""
    lookups.append(f"{wrapper.context.request_context.user_id}:{order_id}")
    return json.dumps({"order": order_id, "status": "shipped"})


@pytest.mark.parametrize("api", APIS)
async def test_ten_turns_with_tool_calls_store_every_answer_once(api: Any) -> None:
    lookups.clear()
    script: list[Any] = []
    for n in range(10):
        if n % 3 == 0:
            script.append(ToolCall("lookup_order", {"order_id": f"o{n}"}))
        script.append(f"answer {n}")
    llm = ScriptedOpenAI(script, api=api)
    agent = Agent(name="Shop", instructions="Help.", tools=[lookup_order], model=llm.model)
    async with client_for(turn_server(agent)) as chat:
        thread_id = (await chat.create_thread("question 0")).thread_id
        for n in range(1, 10):
            turn = await chat.add_user_message(thread_id, f"question {n}")
            assert turn.assistant_text == f"answer {n}" and not turn.errors
        items = await chat.all_items(thread_id)

    answers = [item for item in items if isinstance(item, AssistantMessageItem)]
    assert [a.content[0].text for a in answers] == [f"answer {n}" for n in range(10)]
    assert len({item.id for item in items}) == len(items) == 20
    assert lookups == ["alice:o0", "alice:o3", "alice:o6", "alice:o9"]
    # Turn ten's model input holds the whole history, earlier answers as plain text.
    last = llm.inputs[-1]
    if api == "chat_completions":
        assert {"role": "assistant", "content": "answer 8"} in last
    else:
        assert {"type": "message", "role": "assistant", "content": "answer 8"} in last
    assert llm.remaining == 0 and llm.unscripted_calls == 0


async def test_history_window_limits_what_the_model_sees() -> None:
    llm = ScriptedOpenAI([f"a{n}" for n in range(5)], api="chat_completions")
    agent = Agent(name="A", model=llm.model)
    async with client_for(turn_server(agent, history=HistoryWindow(max_items=4))) as chat:
        thread_id = (await chat.create_thread("q0")).thread_id
        for n in range(1, 5):
            await chat.add_user_message(thread_id, f"q{n}")
    roles = [(m["role"], m["content"]) for m in llm.inputs[-1]]
    assert roles == [
        ("user", [{"type": "text", "text": "q3"}]),
        ("assistant", "a3"),
        ("user", [{"type": "text", "text": "q4"}]),
    ]


@input_guardrail
async def no_secrets(ctx: Any, agent: Any, input: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info=None, tripwire_triggered="secret" in str(input))


@output_guardrail
async def no_rudeness(ctx: Any, agent: Any, output: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info=None, tripwire_triggered="rude" in str(output))


@pytest.mark.parametrize("api", APIS)
async def test_guardrail_tripwires_are_error_events_with_the_right_retry(api: Any) -> None:
    llm = ScriptedOpenAI(["fine answer", "a rude answer", "ok"], api=api)
    agent = Agent(
        name="A",
        model=llm.model,
        input_guardrails=[no_secrets],
        output_guardrails=[no_rudeness],
    )
    async with client_for(turn_server(agent)) as chat:
        thread_id = (await chat.create_thread("hello")).thread_id
        rude = await chat.add_user_message(thread_id, "be rude")
        [error] = rude.errors
        assert (error.code, error.message, error.allow_retry) == (
            "custom",
            OUTPUT_GUARDRAIL_MESSAGE,
            True,
        )
        # The streamed answer was removed under the id the client saw.
        added = [e.item.id for e in rude.events if isinstance(e, ThreadItemAddedEvent)]
        removed = [e.item_id for e in rude.events if isinstance(e, ThreadItemRemovedEvent)]
        assert added and removed == added

        secret = await chat.add_user_message(thread_id, "tell me the secret")
        [error] = secret.errors
        assert (error.message, error.allow_retry) == (INPUT_GUARDRAIL_MESSAGE, False)
        items = await chat.all_items(thread_id)
    answers = [i.content[0].text for i in items if isinstance(i, AssistantMessageItem)]
    assert answers == ["fine answer"]


@pytest.mark.parametrize(
    ("failure", "allow_retry"),
    [(APIFailure(400, "bad input"), False), (APIFailure(503, "overloaded"), True)],
)
async def test_api_failures_offer_a_retry_only_when_one_can_succeed(
    failure: APIFailure, allow_retry: bool, caplog: pytest.LogCaptureFixture
) -> None:
    llm = ScriptedOpenAI([failure], api="chat_completions")
    async with client_for(turn_server(Agent(name="A", model=llm.model))) as chat:
        turn = await chat.create_thread("hi")
    [error] = turn.errors
    assert (error.code, error.allow_retry) == ("stream.error", allow_retry)
    assert any(r.levelname == "ERROR" for r in caplog.records)


@pytest.mark.parametrize("api", APIS)
async def test_cancelled_turn_keeps_the_partial_answer_under_its_streamed_id(api: Any) -> None:
    hold = asyncio.Event()
    llm = ScriptedOpenAI([Text("partial answer that never ends", chunks=4, hold=hold)], api=api)
    server = turn_server(Agent(name="A", model=llm.model))
    ctx = Ctx("alice")
    result = await server.process(req.create_thread("hi").model_dump_json(), ctx)
    assert isinstance(result, StreamingResult)
    seen: list[ThreadStreamEvent] = []
    got_delta = asyncio.Event()

    async def consume() -> None:
        async for frame in result:
            seen.extend(parse_sse(frame))
            if any(
                isinstance(e, ThreadItemUpdatedEvent)
                and isinstance(e.update, AssistantMessageContentPartTextDelta)
                for e in seen
            ):
                got_delta.set()

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(got_delta.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [added] = [e for e in seen if isinstance(e, ThreadItemAddedEvent)]
    thread_id = added.item.thread_id
    items = (await server.store.load_thread_items(thread_id, None, 10, "asc", ctx)).data
    [saved] = [i for i in items if isinstance(i, AssistantMessageItem)]
    assert saved.id == added.item.id != "__fake_id__"
    streamed = "".join(
        e.update.delta
        for e in seen
        if isinstance(e, ThreadItemUpdatedEvent)
        and isinstance(e.update, AssistantMessageContentPartTextDelta)
    )
    assert saved.content[0].text == streamed == "partial answer "
    assert any(isinstance(i, SDKHiddenContextItem) for i in items)


async def test_max_turns_exceeded_offers_no_retry() -> None:
    llm = ScriptedOpenAI([ToolCall("lookup_order", {"order_id": "o1"})] * 3, api="responses")
    agent = Agent(name="A", tools=[lookup_order], model=llm.model)
    async with client_for(turn_server(agent, max_turns=1)) as chat:
        turn = await chat.create_thread("loop")
    [error] = turn.errors
    assert (error.code, error.allow_retry) == ("stream.error", False)


async def test_conflicting_settings_are_refused_before_the_model_is_called() -> None:
    from chatkit.agents import ResponseStreamConverter

    from chatkit_kit.stores import MemoryStore

    llm = ScriptedOpenAI(["never"], api="responses")
    thread = ThreadMetadata(id="thr_1", created_at=datetime(2026, 1, 1))
    for options, message in (
        (
            {"stream_converter": ResponseStreamConverter(), "generated_images": "attachments"},
            "either stream_converter",
        ),
        ({"generated_images": "url"}, "must be 'inline' or 'attachments'"),
    ):
        with pytest.raises(ValueError, match=message):
            async for _ in agent_turn(
                Agent(name="A", model=llm.model),
                thread,
                None,
                Ctx("alice"),
                store=MemoryStore(),
                history=[],
                **options,
            ):
                pass
    assert llm.requests == []
