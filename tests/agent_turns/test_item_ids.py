"""Unique item ids through upstream's `stream_agent_response`, with real openai-agents models
(`OpenAIResponsesModel`, `OpenAIChatCompletionsModel`) on a mocked HTTP transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import pytest
from agents import Agent, Runner, set_tracing_disabled
from chatkit.agents import AgentContext, simple_to_agent_input, stream_agent_response
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)

from chatkit_kit.agents import FAKE_RESPONSES_ID, unique_item_ids
from chatkit_kit.converters import AttachmentAwareConverter, load_history
from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import ScriptedOpenAI
from tests.fixtures.context import Ctx

from ._app import FunctionServer, client_for

set_tracing_disabled(True)

APIS = ["responses", "chat_completions"]


def agent_server(llm: ScriptedOpenAI, *, fix_ids: bool) -> FunctionServer:
    agent = Agent(name="Assistant", instructions="Answer.", model=llm.model)

    async def respond(
        server: FunctionServer, thread: ThreadMetadata, item: UserMessageItem | None, ctx: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        history = await load_history(server.store, thread.id, ctx)
        converter = AttachmentAwareConverter(None, ctx, model_api=llm.model)
        agent_context: AgentContext[Ctx] = AgentContext(
            thread=thread, store=server.store, request_context=ctx
        )
        result = Runner.run_streamed(
            agent, await converter.to_agent_input(history), context=agent_context
        )
        events = stream_agent_response(agent_context, result)
        if fix_ids:
            events = unique_item_ids(events, store=server.store, thread=thread, context=ctx)
        async for event in events:
            yield event

    return FunctionServer(respond)


def item_ids_of(events: Sequence[ThreadStreamEvent]) -> list[str]:
    ids = []
    for event in events:
        if isinstance(event, (ThreadItemAddedEvent, ThreadItemDoneEvent)):
            ids.append(event.item.id)
        elif isinstance(event, (ThreadItemUpdatedEvent, ThreadItemRemovedEvent)):
            ids.append(event.item_id)
    return ids


@pytest.mark.parametrize("api", APIS)
async def test_every_answer_is_stored_once_with_its_own_id(api: Any) -> None:
    answers = [f"answer number {n}" for n in range(1, 6)]
    llm = ScriptedOpenAI(answers, api=api)
    server = agent_server(llm, fix_ids=True)
    async with client_for(server) as chat:
        first = await chat.create_thread("question 1")
        thread_id = first.thread_id
        turns = [first]
        for n in range(2, 6):
            turns.append(await chat.add_user_message(thread_id, f"question {n}"))
        items = await chat.all_items(thread_id)

    texts = [item.content[0].text for item in items]  # type: ignore[union-attr]
    expected: list[str] = []
    for n, answer in enumerate(answers, 1):
        expected += [f"question {n}", answer]
    assert texts == expected
    ids = [item.id for item in items]
    assert len(set(ids)) == len(ids) and FAKE_RESPONSES_ID not in ids

    for turn, stored in zip(
        turns, [i for i in items if isinstance(i, AssistantMessageItem)], strict=True
    ):
        [streamed] = turn.assistant_messages
        assert streamed.id == stored.id
        # The added, updated and done events of the answer all carry the stored id.
        answer_events = [
            e
            for e in turn.events
            if isinstance(e, (ThreadItemAddedEvent, ThreadItemUpdatedEvent))
            or (isinstance(e, ThreadItemDoneEvent) and isinstance(e.item, AssistantMessageItem))
        ]
        assert len(answer_events) >= 4
        assert set(item_ids_of(answer_events)) == {stored.id}
    assert llm.remaining == 0


async def test_without_the_fix_chat_completions_answers_overwrite_each_other() -> None:
    # The bug being fixed (openai/chatkit-python#36): every answer is stored as __fake_id__.
    llm = ScriptedOpenAI(["first answer", "second answer"], api="chat_completions")
    server = agent_server(llm, fix_ids=False)
    async with client_for(server) as chat:
        thread_id = (await chat.create_thread("q1")).thread_id
        await chat.add_user_message(thread_id, "q2")
        items = await chat.all_items(thread_id)
    assert [item.id == FAKE_RESPONSES_ID for item in items] == [False, True, False]
    assert [item.content[0].text for item in items] == ["q1", "second answer", "q2"]  # type: ignore[union-attr]


async def test_responses_ids_are_kept_and_a_colliding_id_is_replaced() -> None:
    # A fresh ScriptedOpenAI per turn repeats its message id (msg_scripted_1_0): a collision.
    seen: list[str] = []

    async def respond(
        server: FunctionServer, thread: ThreadMetadata, item: UserMessageItem | None, ctx: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        llm = ScriptedOpenAI(["same id again"], api="responses")
        agent = Agent(name="A", model=llm.model)
        agent_context: AgentContext[Ctx] = AgentContext(
            thread=thread, store=server.store, request_context=ctx
        )
        history = await load_history(server.store, thread.id, ctx)
        result = Runner.run_streamed(
            agent, await simple_to_agent_input(history), context=agent_context
        )
        async for event in unique_item_ids(
            stream_agent_response(agent_context, result),
            store=server.store,
            thread=thread,
            context=ctx,
        ):
            if isinstance(event, ThreadItemDoneEvent):
                seen.append(event.item.id)
            yield event

    async with client_for(FunctionServer(respond)) as chat:
        thread_id = (await chat.create_thread("q1")).thread_id
        await chat.add_user_message(thread_id, "q2")
        items = await chat.all_items(thread_id)
    answers = [item for item in items if isinstance(item, AssistantMessageItem)]
    assert len(answers) == 2
    assert answers[0].id == "msg_scripted_1_0"  # real Responses ids are kept
    assert answers[1].id != "msg_scripted_1_0" and answers[1].id.startswith("msg_")
    assert seen == [answers[0].id, answers[1].id]


# --- the id fixer on hand-made streams ---------------------------------------------------------


async def _events(*events: ThreadStreamEvent) -> AsyncIterator[ThreadStreamEvent]:
    for event in events:
        yield event


def _message(item_id: str, text: str = "") -> AssistantMessageItem:
    return AssistantMessageItem(
        id=item_id,
        thread_id="thr_1",
        created_at=datetime(2026, 1, 1),
        content=[AssistantMessageContent(text=text)] if text else [],
    )


async def test_two_messages_with_the_fake_id_in_one_run_get_two_ids_and_removals_follow() -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    ctx = Ctx("alice")
    thread = ThreadMetadata(id="thr_1", created_at=datetime(2026, 1, 1))
    await store.save_thread(thread, ctx)
    delta = AssistantMessageContentPartTextDelta(content_index=0, delta="x")
    fixed = [
        event
        async for event in unique_item_ids(
            _events(
                ThreadItemAddedEvent(item=_message(FAKE_RESPONSES_ID)),
                ThreadItemUpdatedEvent(item_id=FAKE_RESPONSES_ID, update=delta),
                ThreadItemDoneEvent(item=_message(FAKE_RESPONSES_ID, "one")),
                ThreadItemAddedEvent(item=_message(FAKE_RESPONSES_ID)),
                ThreadItemUpdatedEvent(item_id=FAKE_RESPONSES_ID, update=delta),
                ThreadItemDoneEvent(item=_message(FAKE_RESPONSES_ID, "two")),
                ThreadItemUpdatedEvent(item_id="wf_continued", update=delta),
                ThreadItemRemovedEvent(item_id=FAKE_RESPONSES_ID),
            ),
            store=store,
            thread=thread,
            context=ctx,
        )
    ]
    ids = item_ids_of(fixed)
    first, second = ids[0], ids[3]
    assert first != second and FAKE_RESPONSES_ID not in ids
    assert ids == [first, first, first, second, second, second, "wf_continued", first, second]
    assert [type(e).__name__ for e in fixed[-2:]] == ["ThreadItemRemovedEvent"] * 2
