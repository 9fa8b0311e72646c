"""The endpoint parses each request once: no per-request TypeAdapter, same replies as `process`."""

from __future__ import annotations

import ast
import inspect
import json
import logging
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pydantic
import pytest
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from starlette.requests import Request

from chatkit_kit import _dispatch
from chatkit_kit.asgi import chatkit_app
from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import requests
from tests.fixtures.context import Ctx
from tests.fixtures.servers import EchoServer

# `ChatKitServer.process` as of openai-chatkit 1.6.5, the shape `_dispatch.process_parsed`
# mirrors. If this test fails, upstream changed `process`: read the new source, update
# `process_parsed` (and `_dispatch._PROCESS_NAMES`) to match it, then this text.
UPSTREAM_PROCESS = '''
async def process(
    self, request: str | bytes | bytearray, context: TContext
) -> StreamingResult | NonStreamingResult:
    """Parse an incoming ChatKit request and route it to streaming or non-streaming handlers."""
    parsed_request = TypeAdapter[ChatKitReq](ChatKitReq).validate_json(request)
    logger.info(f"Received request op: {parsed_request.type}")

    if is_streaming_req(parsed_request):
        return StreamingResult(self._process_streaming(parsed_request, context))
    else:
        return NonStreamingResult(
            await self._process_non_streaming(parsed_request, context)
        )
'''


def test_upstream_process_is_the_code_process_parsed_mirrors() -> None:
    source = textwrap.dedent(inspect.getsource(ChatKitServer.process))
    assert ast.dump(ast.parse(source)) == ast.dump(ast.parse(UPSTREAM_PROCESS)), (
        "upstream's ChatKitServer.process changed; see the comment above UPSTREAM_PROCESS"
    )
    assert _dispatch.upstream_shape_problems() == []
    assert _dispatch.UPSTREAM_SHAPE_OK


def test_the_shape_check_notices_a_changed_process() -> None:
    class Changed(ChatKitServer[Ctx]):
        async def process(  # type: ignore[override]
            self, request: bytes, context: Ctx, *, extra: int = 0
        ) -> StreamingResult | NonStreamingResult:
            return NonStreamingResult(request)

        async def _process_non_streaming(self, request: Any) -> bytes:  # type: ignore[override]
            return b"{}"

    problems = _dispatch.upstream_shape_problems(Changed)
    assert any("process takes" in p for p in problems)
    assert any("uses different names" in p for p in problems)
    assert any("_process_non_streaming takes" in p for p in problems)


Server = EchoServer


class OwnProcess(Server):
    """An app that wraps `process`: the endpoint must still go through it."""

    calls = 0

    async def process(
        self, request: str | bytes | bytearray, context: Ctx
    ) -> StreamingResult | NonStreamingResult:
        OwnProcess.calls += 1
        return await super().process(request, context)


async def context_factory(request: Request) -> Ctx:
    return Ctx(user_id="alice")


@pytest.fixture
def adapters_built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every `pydantic.TypeAdapter` constructed while the test runs."""
    built: list[object] = []
    original = pydantic.TypeAdapter.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(args[0] if args else kwargs.get("type"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(pydantic.TypeAdapter, "__init__", counting_init)
    yield built


CREATE = requests.create_thread("hi").model_dump(mode="json")


async def requests_mix(client: httpx.AsyncClient) -> str:
    """A streamed create, then the non-streaming reads of that thread; returns its id."""
    created = await client.post("/chatkit", json=CREATE)
    assert created.status_code == 200
    events = [
        json.loads(line.removeprefix("data: "))
        for line in created.text.splitlines()
        if line.startswith("data: ")
    ]
    thread_id: str = events[0]["thread"]["id"]
    for body in (
        {"type": "threads.list", "params": {"limit": 5}},
        {"type": "items.list", "params": {"thread_id": thread_id}},
        {"type": "threads.get_by_id", "params": {"thread_id": thread_id}},
    ):
        response = await client.post("/chatkit", json=body)
        assert response.status_code == 200, response.text
    return thread_id


def asgi_client(server: ChatKitServer[Ctx]) -> httpx.AsyncClient:
    app = chatkit_app(server, context_factory)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_the_endpoint_builds_no_type_adapter_per_request(
    adapters_built: list[object],
) -> None:
    server = Server(MemoryStore())
    async with asgi_client(server) as client:
        await requests_mix(client)  # warm up anything built once, lazily
        adapters_built.clear()
        await requests_mix(client)
        bad = await client.post("/chatkit", json={"type": "threads.list", "params": {"limit": "x"}})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_request"
    assert adapters_built == []
    # The counter does see upstream's own parse: one new adapter per `process` call.
    await server.process(b'{"type":"threads.list","params":{}}', Ctx(user_id="alice"))
    assert len(adapters_built) == 1


async def test_an_app_that_overrides_process_is_served_through_it(
    adapters_built: list[object],
) -> None:
    OwnProcess.calls = 0
    server = OwnProcess(MemoryStore())
    async with asgi_client(server) as client:
        await requests_mix(client)
    assert OwnProcess.calls == 4
    assert len(adapters_built) >= 4
    assert not _dispatch.routes_itself(server)
    assert _dispatch.routes_itself(Server(MemoryStore()))


async def test_process_parsed_answers_what_process_answers() -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    server = Server(store)
    ctx = Ctx(user_id="alice")
    created = await server.process(json.dumps(CREATE).encode(), ctx)
    assert isinstance(created, StreamingResult)
    first = await anext(aiter(created))
    thread_id = json.loads(first.removeprefix(b"data: "))["thread"]["id"]
    for body in (
        {"type": "threads.list", "params": {"limit": 5}},
        {"type": "items.list", "params": {"thread_id": thread_id, "order": "desc"}},
        {"type": "threads.get_by_id", "params": {"thread_id": thread_id}},
    ):
        raw = json.dumps(body).encode()
        parsed = _dispatch.REQUEST_ADAPTER.validate_json(raw)
        ours = await _dispatch.process_parsed(server, parsed, raw, ctx)
        theirs = await server.process(raw, ctx)
        assert isinstance(ours, NonStreamingResult) and isinstance(theirs, NonStreamingResult)
        assert ours.json == theirs.json
    raw = json.dumps(CREATE).encode()
    ours_stream = await _dispatch.process_parsed(
        server, _dispatch.REQUEST_ADAPTER.validate_json(raw), raw, ctx
    )
    assert isinstance(ours_stream, StreamingResult)
    types = [json.loads(c.removeprefix(b"data: "))["type"] async for c in ours_stream]
    assert types[0] == "thread.created"
    assert len((await store.load_threads(10, None, "asc", ctx)).data) == 2


async def test_upstream_still_logs_the_op(caplog: pytest.LogCaptureFixture) -> None:
    async with asgi_client(Server(MemoryStore())) as client:
        with caplog.at_level(logging.INFO, logger="chatkit"):
            response = await client.post("/chatkit", json={"type": "threads.list", "params": {}})
    assert response.status_code == 200
    assert "Received request op: threads.list" in caplog.messages
