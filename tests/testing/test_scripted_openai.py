"""`ScriptedOpenAI`: scripted replies behind the real openai-agents models, both APIs."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from agents import Agent, Runner, function_tool, set_tracing_disabled

from chatkit_kit.testing import APIFailure, ScriptedOpenAI, Text, ToolCall

set_tracing_disabled(True)

calls: list[str] = []


@function_tool
def add(a: int, b: int) -> str:
    """Add two numbers."""
    calls.append(f"{a}+{b}")
    return str(a + b)


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_calls_and_text_in_order(api: Any, streamed: bool) -> None:
    calls.clear()
    llm = ScriptedOpenAI(
        [[ToolCall("add", {"a": 1, "b": 2}), ToolCall("add", '{"a": 3, "b": 4}')], "3 and 7"],
        api=api,
    )
    agent = Agent(name="calc", tools=[add], model=llm.model)
    if streamed:
        result = Runner.run_streamed(agent, "add things")
        deltas = [
            event.data.delta
            async for event in result.stream_events()
            if event.type == "raw_response_event"
            and event.data.type == "response.output_text.delta"
        ]
        assert "".join(deltas) == "3 and 7" and len(deltas) == 3
        output = result.final_output
    else:
        output = (await Runner.run(agent, "add things")).final_output
    assert output == "3 and 7"
    # openai-agents runs the two tool calls of one response concurrently: either may go first.
    assert sorted(calls) == ["1+2", "3+4"]
    assert [bool(body.get("stream")) for body in llm.requests] == [streamed, streamed]
    assert llm.remaining == 0 and len(llm.requests) == 2


async def test_failures_and_calls_past_the_script() -> None:
    llm = ScriptedOpenAI([APIFailure(429, "slow down")], api="chat_completions")
    agent = Agent(name="a", model=llm.model)
    with pytest.raises(openai.RateLimitError, match="slow down"):
        await Runner.run(agent, "hi")
    with pytest.raises(openai.InternalServerError, match="past the script"):
        await Runner.run(agent, "hi")
    assert llm.unscripted_calls == 1


def test_bad_steps_and_apis_are_rejected() -> None:
    with pytest.raises(TypeError, match="a script step is"):
        ScriptedOpenAI([[]])
    with pytest.raises(TypeError, match="a script step is"):
        ScriptedOpenAI([[APIFailure()]])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="api must be"):
        ScriptedOpenAI(api="completions")  # type: ignore[arg-type]
    assert Text("a b c d", chunks=2) == Text("a b c d", chunks=2)
