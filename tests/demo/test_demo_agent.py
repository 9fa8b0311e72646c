"""The demo's Agent responder (used when OPENAI_API_KEY is set), run on a scripted model."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from agents import Agent, set_tracing_disabled

from chatkit_kit.demo.app import DemoConfig, build_app
from chatkit_kit.demo.responders import agent_responder

from ..converters._scripted_model import ScriptedModel


async def test_agent_responder_answers_with_history_and_attachments(tmp_path: Path) -> None:
    set_tracing_disabled(True)
    model = ScriptedModel(["First answer.", "Second answer."])
    config = DemoConfig(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        files_dir=str(tmp_path / "files"),
        responder=agent_responder(Agent(name="demo", instructions="Be brief.", model=model)),
        mode="scripted",
    )
    app = build_app(config)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http,
    ):

        async def stream(payload: dict[str, object]) -> list[dict[str, object]]:
            response = await http.post("/chatkit", json=payload)
            assert response.status_code == 200, response.text
            return [
                json.loads(line[6:])
                for line in response.text.splitlines()
                if line.startswith("data: ")
            ]

        def message(text: str, attachments: list[str]) -> dict[str, object]:
            return {
                "content": [{"type": "input_text", "text": text}],
                "attachments": attachments,
                "inference_options": {},
            }

        events = await stream({"type": "threads.create", "params": {"input": message("hi", [])}})
        thread_id = events[0]["thread"]["id"]  # type: ignore[index]
        upload = await http.post(
            "/chatkit/attachments/upload",
            files={"file": ("notes.md", b"# Milk\nbuy it", "text/markdown")},
        )
        attachment_id = upload.json()["id"]
        events = await stream(
            {
                "type": "threads.add_user_message",
                "params": {"thread_id": thread_id, "input": message("read it", [attachment_id])},
            }
        )
    done = [e["item"] for e in events if e["type"] == "thread.item.done"]
    assert done[-1]["type"] == "assistant_message"  # type: ignore[index]
    assert done[-1]["content"][0]["text"] == "Second answer."  # type: ignore[index]
    # The second model call saw the whole first turn, then the new message with the file's text.
    second_input = json.dumps(model.inputs[1])
    assert second_input.index('"hi"') < second_input.index("First answer.")
    assert second_input.index("First answer.") < second_input.index("read it")
    assert "# Milk\\nbuy it" in second_input
