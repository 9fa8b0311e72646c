"""A scripted openai-agents `Model`: replies with canned text and records its input (no network)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

from agents import ModelResponse, TResponseInputItem, Usage
from agents.models.interface import Model
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)


class ScriptedModel(Model):
    """Answers call n with `replies[n]`; `inputs[n]` is the input the model received."""

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.inputs: list[list[TResponseInputItem]] = []
        self.instructions: list[str | None] = []

    def _next(self, system_instructions: str | None, input: Any) -> tuple[str, str]:
        if not self.replies:
            raise AssertionError("ScriptedModel was called more often than scripted")
        items: list[TResponseInputItem] = (
            [{"role": "user", "content": input}] if isinstance(input, str) else input
        )
        self.inputs.append(copy.deepcopy(items))
        self.instructions.append(system_instructions)
        return f"msg_scripted_{len(self.inputs)}", self.replies.pop(0)

    @staticmethod
    def _message(item_id: str, text: str, *, done: bool) -> ResponseOutputMessage:
        return ResponseOutputMessage(
            id=item_id,
            type="message",
            role="assistant",
            status="completed" if done else "in_progress",
            content=(
                [ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])]
                if done
                else []
            ),
        )

    @staticmethod
    def _response(output: list[Any], status: Any) -> Response:
        return Response(
            id="resp_scripted",
            created_at=0,
            model="scripted",
            object="response",
            output=output,
            tool_choice="auto",
            tools=[],
            top_p=None,
            parallel_tool_calls=False,
            status=status,
        )

    async def get_response(
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        item_id, text = self._next(system_instructions, input)
        return ModelResponse(
            output=[self._message(item_id, text, done=True)], usage=Usage(), response_id=None
        )

    async def stream_response(
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> AsyncIterator[ResponseStreamEvent]:
        item_id, text = self._next(system_instructions, input)
        final = self._message(item_id, text, done=True)
        part = ResponseOutputText(type="output_text", text="", annotations=[], logprobs=[])
        events: list[Any] = [
            ResponseCreatedEvent(
                type="response.created",
                response=self._response([], "in_progress"),
                sequence_number=0,
            ),
            ResponseOutputItemAddedEvent(
                type="response.output_item.added",
                item=self._message(item_id, text, done=False),
                output_index=0,
                sequence_number=1,
            ),
            ResponseContentPartAddedEvent(
                type="response.content_part.added",
                item_id=item_id,
                output_index=0,
                content_index=0,
                part=part,
                sequence_number=2,
            ),
            ResponseTextDeltaEvent(
                type="response.output_text.delta",
                item_id=item_id,
                output_index=0,
                content_index=0,
                delta=text,
                logprobs=[],
                sequence_number=3,
            ),
            ResponseTextDoneEvent(
                type="response.output_text.done",
                item_id=item_id,
                output_index=0,
                content_index=0,
                text=text,
                logprobs=[],
                sequence_number=4,
            ),
            ResponseContentPartDoneEvent(
                type="response.content_part.done",
                item_id=item_id,
                output_index=0,
                content_index=0,
                part=final.content[0],
                sequence_number=5,
            ),
            ResponseOutputItemDoneEvent(
                type="response.output_item.done",
                item=final,
                output_index=0,
                sequence_number=6,
            ),
            ResponseCompletedEvent(
                type="response.completed",
                response=self._response([final], "completed"),
                sequence_number=7,
            ),
        ]
        for event in events:
            yield event
