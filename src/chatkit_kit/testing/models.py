"""Scripted model replies for testing agent apps without an API key or network.

`ScriptedOpenAI` is an OpenAI API stand-in on an `_http.MockTransport`: the real
openai-agents `OpenAIResponsesModel` or `OpenAIChatCompletionsModel` talks to it, streaming or
not, so everything between your Agent and the HTTP wire (input conversion, tool calls, stream
events, `__fake_id__` ids of Chat Completions) runs exactly as in production. Each model call
answers with the next step of the script and records the request body.

```python
llm = ScriptedOpenAI([ToolCall("get_weather", {"city": "Paris"}), "It is sunny in Paris."],
                     api="chat_completions")
agent = Agent(name="Weather", tools=[get_weather], model=llm.model)
```
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal, TypeAlias

import openai
from agents import Model, OpenAIChatCompletionsModel, OpenAIResponsesModel
from openai import AsyncOpenAI

__all__ = [
    "APIFailure",
    "GeneratedImage",
    "ScriptStep",
    "ScriptedOpenAI",
    "Text",
    "ToolCall",
]

ModelApi = Literal["responses", "chat_completions"]


def _openai_http_module() -> ModuleType:
    """The HTTP library of the installed openai client: httpx2 (openai 3) or httpx."""
    for name in ("httpx2", "httpx"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if issubclass(openai.DefaultAsyncHttpxClient, module.AsyncClient):
            return module
    raise ImportError("cannot find the HTTP library (httpx2 or httpx) of the openai package")


_http: Any = _openai_http_module()


@dataclass(frozen=True)
class Text:
    """An assistant message with `text`, streamed in `chunks` deltas (split on words).

    With `hold`, a streamed reply stops after its first delta until the event is set: the
    model is "still typing", for tests of cancellation and concurrency.
    """

    text: str
    chunks: int = 3
    hold: asyncio.Event | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ToolCall:
    """A function tool call; `arguments` is a JSON object (dict) or its JSON text."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    call_id: str | None = None
    """Default: `call_<n>`, numbered across the script."""

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)


@dataclass(frozen=True)
class GeneratedImage:
    """An image generation call's result (Responses API only), with `partial` previews first."""

    data: bytes
    partial: tuple[bytes, ...] = ()

    def base64(self) -> str:
        return base64.b64encode(self.data).decode()


@dataclass(frozen=True)
class APIFailure:
    """The API answers with HTTP `status` and an OpenAI error body (the client raises)."""

    status: int = 500
    message: str = "scripted failure"
    code: str | None = None


Output: TypeAlias = "Text | ToolCall | GeneratedImage"
ScriptStep: TypeAlias = "str | Output | APIFailure | Sequence[Output]"
"""One model call: a reply text, one output, a failure, or several outputs in one response."""


class ScriptedOpenAI:
    """A scripted OpenAI API behind a real openai-agents model; records every request.

    `api="responses"` gives an `OpenAIResponsesModel` (the Responses API, real `msg_...` ids);
    `api="chat_completions"` an `OpenAIChatCompletionsModel`. Use `.model` as the Agent's
    model. `.requests` holds each request's JSON body; `.inputs` the model input of each call
    (`input` for Responses, `messages` for Chat Completions). Add steps with `extend`. A call
    past the end of the script fails with HTTP 500 and is recorded in `.unscripted_calls`.
    """

    def __init__(
        self,
        script: Iterable[ScriptStep] = (),
        *,
        api: ModelApi = "responses",
        model_name: str = "gpt-scripted",
    ) -> None:
        if api not in ("responses", "chat_completions"):
            raise ValueError(f"api must be 'responses' or 'chat_completions', got {api!r}")
        self.api: ModelApi = api
        self.model_name = model_name
        self._steps: list[list[Output] | APIFailure] = []
        self.requests: list[dict[str, Any]] = []
        self.unscripted_calls = 0
        self._calls = 0
        self._tool_calls = 0
        self.extend(script)
        self.transport = _http.MockTransport(self._handle)
        self.client = AsyncOpenAI(
            api_key="sk-scripted",
            base_url="http://scripted-openai.test/v1",
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(transport=self.transport),
        )
        self.model: Model
        if api == "responses":
            self.model = OpenAIResponsesModel(model=model_name, openai_client=self.client)
        else:
            self.model = OpenAIChatCompletionsModel(model=model_name, openai_client=self.client)

    def extend(self, steps: Iterable[ScriptStep]) -> None:
        """Append steps to the script."""
        for step in steps:
            normalized = _normalize(step)
            if (
                self.api == "chat_completions"
                and not isinstance(normalized, APIFailure)
                and any(isinstance(output, GeneratedImage) for output in normalized)
            ):
                raise ValueError("GeneratedImage outputs exist on the Responses API only")
            self._steps.append(normalized)

    @property
    def remaining(self) -> int:
        """Steps not used yet."""
        return len(self._steps)

    @property
    def inputs(self) -> list[Any]:
        """The model input of each call: Responses `input`, or Chat Completions `messages`."""
        key = "input" if self.api == "responses" else "messages"
        return [body.get(key) for body in self.requests]

    async def aclose(self) -> None:
        """Close the OpenAI client."""
        await self.client.close()

    # The mocked HTTP endpoint

    def _handle(self, request: Any) -> Any:
        body = json.loads(request.content or b"{}")
        self.requests.append(body)
        expected = "/responses" if self.api == "responses" else "/chat/completions"
        if not request.url.path.endswith(expected):
            return _error(404, f"ScriptedOpenAI({self.api!r}) got {request.url.path}")
        if not self._steps:
            self.unscripted_calls += 1
            return _error(500, f"ScriptedOpenAI: call {len(self.requests)} is past the script")
        step = self._steps.pop(0)
        self._calls += 1
        if isinstance(step, APIFailure):
            return _error(step.status, step.message, step.code)
        outputs = [self._with_call_id(output) for output in step]
        stream = bool(body.get("stream"))
        if self.api == "responses":
            return _responses_reply(self._calls, outputs, self.model_name, stream)
        return _chat_reply(self._calls, outputs, self.model_name, stream)

    def _with_call_id(self, output: Output) -> Output:
        if isinstance(output, ToolCall) and output.call_id is None:
            self._tool_calls += 1
            return ToolCall(output.name, output.arguments, f"call_{self._tool_calls}")
        return output


def _normalize(step: ScriptStep) -> list[Output] | APIFailure:
    if isinstance(step, str):
        return [Text(step)]
    if isinstance(step, (Text, ToolCall, GeneratedImage)):
        return [step]
    if isinstance(step, APIFailure):
        return step
    outputs = list(step)
    kinds = (Text, ToolCall, GeneratedImage)
    if not outputs or not all(isinstance(output, kinds) for output in outputs):
        raise TypeError(
            "a script step is a str, Text, ToolCall, GeneratedImage, APIFailure or a non-empty "
            f"sequence of Text, ToolCall and GeneratedImage, got {step!r}"
        )
    return outputs


def _chunks(text: str, count: int) -> list[str]:
    words = text.split(" ")
    count = max(1, min(count, len(words)))
    size = -(-len(words) // count)
    pieces = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [piece + (" " if i < len(pieces) - 1 else "") for i, piece in enumerate(pieces)]


def _error(status: int, message: str, code: str | None = None) -> Any:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return _http.Response(
        status, json={"error": {"message": message, "type": kind, "param": None, "code": code}}
    )


@dataclass(frozen=True)
class _Hold:
    """In an event list: wait for `event` before sending the rest."""

    event: asyncio.Event


def _frame(name: str | None, data: Any) -> bytes:
    head = f"event: {name}\n" if name is not None else ""
    return (
        head + "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"
    ).encode()


def _sse(events: list[tuple[str | None, Any]]) -> Any:
    headers = {"content-type": "text/event-stream"}
    if not any(isinstance(data, _Hold) for _, data in events):
        body = b"".join(_frame(name, data) for name, data in events)
        return _http.Response(200, content=body, headers=headers)

    async def stream() -> AsyncIterator[bytes]:
        for name, data in events:
            if isinstance(data, _Hold):
                await data.event.wait()
            else:
                yield _frame(name, data)

    return _http.Response(200, content=stream(), headers=headers)


# --- Responses API -------------------------------------------------------------------------


def _response(call: int, output: list[dict[str, Any]], model: str, status: str) -> dict[str, Any]:
    return {
        "id": f"resp_scripted_{call}",
        "object": "response",
        "created_at": 0,
        "model": model,
        "status": status,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 1,
            "output_tokens": 1,
            "total_tokens": 2,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _responses_items(call: int, outputs: list[Output]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for index, output in enumerate(outputs):
        if isinstance(output, Text):
            items.append(
                {
                    "type": "message",
                    "id": f"msg_scripted_{call}_{index}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": output.text, "annotations": []}],
                }
            )
        elif isinstance(output, GeneratedImage):
            items.append(
                {
                    "type": "image_generation_call",
                    "id": f"ig_scripted_{call}_{index}",
                    "status": "completed",
                    "result": output.base64(),
                }
            )
        else:
            items.append(
                {
                    "type": "function_call",
                    "id": f"fc_scripted_{call}_{index}",
                    "call_id": output.call_id,
                    "name": output.name,
                    "arguments": output.arguments_json(),
                    "status": "completed",
                }
            )
    return items


def _responses_reply(call: int, outputs: list[Output], model: str, stream: bool) -> Any:
    items = _responses_items(call, outputs)
    if not stream:
        return _http.Response(200, json=_response(call, items, model, "completed"))
    events: list[Any] = [
        {"type": "response.created", "response": _response(call, [], model, "in_progress")}
    ]
    for index, (output, item) in enumerate(zip(outputs, items, strict=True)):
        if isinstance(output, Text):
            item_id = item["id"]
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "content": []},
                }
            )
            empty = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item_id, "output_index": index, "content_index": 0}
            events.append({"type": "response.content_part.added", **where, "part": empty})
            for number, piece in enumerate(_chunks(output.text, output.chunks)):
                if number == 1 and output.hold is not None:
                    events.append(_Hold(output.hold))
                events.append(
                    {"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                )
            events.append(
                {"type": "response.output_text.done", **where, "text": output.text, "logprobs": []}
            )
            events.append(
                {"type": "response.content_part.done", **where, "part": item["content"][0]}
            )
        elif isinstance(output, GeneratedImage):
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "result": None},
                }
            )
            for number, preview in enumerate(output.partial):
                events.append(
                    {
                        "type": "response.image_generation_call.partial_image",
                        "item_id": item["id"],
                        "output_index": index,
                        "partial_image_index": number,
                        "partial_image_b64": base64.b64encode(preview).decode(),
                    }
                )
        else:
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "arguments": ""},
                }
            )
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "item_id": item["id"],
                    "output_index": index,
                    "delta": item["arguments"],
                }
            )
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append(
        {"type": "response.completed", "response": _response(call, items, model, "completed")}
    )
    frames: list[tuple[str | None, Any]] = []
    for number, event in enumerate(events):
        if isinstance(event, _Hold):
            frames.append((None, event))
            continue
        event["sequence_number"] = number
        frames.append((event["type"], event))
    return _sse(frames)


# --- Chat Completions ----------------------------------------------------------------------


def _chat_message(outputs: list[Output]) -> dict[str, Any]:
    texts = [output.text for output in outputs if isinstance(output, Text)]
    calls = [output for output in outputs if isinstance(output, ToolCall)]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json()},
            }
            for call in calls
        ]
    return message


def _chat_reply(call: int, outputs: list[Output], model: str, stream: bool) -> Any:
    message = _chat_message(outputs)
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    head = {"id": f"chatcmpl-scripted-{call}", "created": 0, "model": model}
    if not stream:
        return _http.Response(
            200,
            json={
                **head,
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            },
        )

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            **head,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
    for output in outputs:
        if isinstance(output, Text):
            for number, piece in enumerate(_chunks(output.text, output.chunks)):
                if number == 1 and output.hold is not None:
                    events.append((None, _Hold(output.hold)))
                events.append((None, chunk({"content": piece})))
    for index, tool_call in enumerate(output for output in outputs if isinstance(output, ToolCall)):
        events.append(
            (
                None,
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": tool_call.call_id,
                                "type": "function",
                                "function": {
                                    "name": tool_call.name,
                                    "arguments": tool_call.arguments_json(),
                                },
                            }
                        ]
                    }
                ),
            )
        )
    events.append((None, chunk({}, finish)))
    usage_chunk = {**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
    events.append((None, usage_chunk))
    events.append((None, "[DONE]"))
    return _sse(events)
