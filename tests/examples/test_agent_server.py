"""The complete example (examples/agent_server): SQLite, uploads, an Agent with a tool, served by
uvicorn and driven over real HTTP with the test kit, on both model APIs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from agents import set_tracing_disabled
from chatkit.types import AssistantMessageItem, UserMessageItem
from examples.agent_server.app import Ctx, create_app

from chatkit_kit.agents import FAKE_RESPONSES_ID
from chatkit_kit.testing import ChatKitTestClient, ScriptedOpenAI, ToolCall
from tests.fixtures.servers import Serve

set_tracing_disabled(True)

APIS = ["responses", "chat_completions"]


@asynccontextmanager
async def running(serve: Serve, app: Any) -> AsyncIterator[str]:
    async with app.router.lifespan_context(app):  # migrates the database
        live = await serve(app)
        yield live.base_url


@pytest.mark.parametrize("api", APIS)
async def test_ten_turns_store_every_answer_once_with_its_own_id(
    serve: Serve, tmp_path: Path, api: Any
) -> None:
    script: list[Any] = []
    for n in range(10):
        if n == 4:
            script.append(ToolCall("get_order_status", {"order_id": "A-1001"}))
        script.append(f"Answer {n}.")
    llm = ScriptedOpenAI(script, api=api)
    app = create_app(
        model=llm.model,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}",
        upload_dir=tmp_path / "uploads",
    )
    async with (
        running(serve, app) as url,
        ChatKitTestClient(url, headers={"x-user-id": "alice"}) as chat,
    ):
        first = await chat.create_thread("Question 0")
        thread_id = first.thread_id
        streamed = [first.assistant_messages[0].id]
        for n in range(1, 10):
            turn = await chat.add_user_message(thread_id, f"Question {n}")
            assert turn.assistant_text == f"Answer {n}." and not turn.errors
            streamed.append(turn.assistant_messages[0].id)
        items = await chat.all_items(thread_id)
        thread = await chat.get_thread(thread_id)

        # Stored in SQLite: every answer once, with the id the client saw.
        store = app.state.store
        page = await store.load_thread_items(thread_id, None, 100, "asc", Ctx("alice"))

    for listing in (items, page.data):
        assert [type(i).__name__ for i in listing] == [
            "UserMessageItem",
            "AssistantMessageItem",
        ] * 10
        answers = [i for i in listing if isinstance(i, AssistantMessageItem)]
        assert [a.content[0].text for a in answers] == [f"Answer {n}." for n in range(10)]
        assert [a.id for a in answers] == streamed
        questions = [i for i in listing if isinstance(i, UserMessageItem)]
        assert [q.content[0].text for q in questions] == [f"Question {n}" for n in range(10)]
        ids = [i.id for i in listing]
        assert len(set(ids)) == 20 and FAKE_RESPONSES_ID not in ids
    assert thread.title == "Question 0"
    # The tool ran for alice's order and its result went back to the model.
    tool_results = [json.dumps(entry) for entry in llm.inputs[5]]
    assert any("shipped on Monday" in text for text in tool_results)
    assert llm.remaining == 0 and llm.unscripted_calls == 0


async def test_direct_upload_reaches_the_model_and_only_its_owner(
    serve: Serve, tmp_path: Path
) -> None:
    llm = ScriptedOpenAI(["It says: remember the milk."], api="chat_completions")
    app = create_app(
        model=llm.model,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}",
        upload_dir=tmp_path / "uploads",
    )
    async with running(serve, app) as url:
        async with ChatKitTestClient(url, headers={"x-user-id": "alice"}) as chat:
            note = await chat.upload(
                "note.txt", b"remember the milk", "text/plain", strategy="direct"
            )
            turn = await chat.create_thread("What does my note say?", attachments=[note])
            assert turn.assistant_text == "It says: remember the milk."
        async with ChatKitTestClient(url, headers={"x-user-id": "bob"}) as bob:
            assert (await bob.list_threads()).data == []
    [user_message] = llm.inputs[0][1:2]
    assert any("remember the milk" in part.get("text", "") for part in user_message["content"])


async def test_s3_two_phase_upload(
    serve: Serve, tmp_path: Path, s3_client: Any, bucket: str
) -> None:
    llm = ScriptedOpenAI(["A tiny image."], api="responses")
    app = create_app(
        model=llm.model,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}",
        s3_client=s3_client,
        s3_bucket=bucket,
    )
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
    async with (
        running(serve, app) as url,
        ChatKitTestClient(url, headers={"x-user-id": "alice"}) as chat,
    ):
        image = await chat.upload("dot.png", png, "image/png")
        turn = await chat.create_thread("What is this?", attachments=[image])
        assert turn.assistant_text == "A tiny image."
        await chat.delete_thread(turn.thread_id)
    parts = llm.inputs[0][0]["content"]  # Responses: instructions are not in the input
    assert parts[1]["type"] == "input_image" and parts[1]["image_url"].startswith("data:image/png")
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0  # deleted with it
