"""The ChatKit endpoint served by a real uvicorn server on loopback, driven by httpx."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import AsyncIterator, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from chatkit.server import ChatKitServer
from chatkit.store import AttachmentStore, NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    Attachment,
    AttachmentCreateParams,
    FileAttachment,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from chatkit_kit._http import STATUS_CODES, ClientRequestError, ContextFactory
from chatkit_kit.asgi import (
    DEFAULT_KEEPALIVE,
    DEFAULT_MAX_BODY_SIZE,
    ChatKitEndpoint,
    CORSConfig,
    chatkit_app,
    chatkit_routes,
)
from chatkit_kit.attachments import (
    AttachmentError,
    AttachmentPolicyError,
    AttachmentTooLargeError,
    AttachmentTypeNotAllowedError,
    AttachmentVerificationError,
    DirectUploadAttachmentStore,
    InvalidUploadError,
    LocalBlobStorage,
    UploadPolicy,
)
from chatkit_kit.errors import (
    DatabaseConfigurationError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    SchemaVersionError,
)
from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import requests
from tests.fixtures.context import Ctx

# ---------------------------------------------------------------------------------------------
# The app under test


async def context_factory(request: Request) -> Ctx:
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer "):
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    user = auth.removeprefix("Bearer ")
    if user == "blocked":
        raise HTTPException(403, "user is blocked")
    return Ctx(user_id=user)


class SlowMemoryStore(MemoryStore[Ctx]):
    """A MemoryStore whose writes really wait, like a database round trip.

    Reads of the ids in `FAULTS` fail the way a broken or unreachable database does.
    """

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Ctx) -> None:
        await asyncio.sleep(0.01)
        await super().add_thread_item(thread_id, item, context)

    async def load_thread(self, thread_id: str, context: Ctx) -> ThreadMetadata:
        _fault(thread_id)
        return await super().load_thread(thread_id, context)

    async def load_attachment(self, attachment_id: str, context: Ctx) -> Attachment:
        _fault(attachment_id)
        return await super().load_attachment(attachment_id, context)


FAULTS: dict[str, Exception] = {
    "thr_broken": RuntimeError("disk on fire"),
    "atc_broken": RuntimeError("disk on fire"),
    "thr_unavailable": DatabaseUnavailableError("connection refused (secret host db.internal)"),
    "atc_unavailable": DatabaseUnavailableError("connection refused (secret host db.internal)"),
    "thr_timeout": DatabaseTimeoutError("statement timeout on db.internal"),
    "atc_timeout": DatabaseTimeoutError("statement timeout on db.internal"),
    "thr_misconfigured": DatabaseConfigurationError("role 'app' on db.internal does not exist"),
    "atc_misconfigured": SchemaVersionError("schema version 9 on db.internal is newer"),
}


def _fault(key: str) -> None:
    if key in FAULTS:
        raise FAULTS[key]


@dataclass
class Script:
    """What the scripted server's `respond` does, chosen by the user's message text."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: list[str] = field(default_factory=list)


def _text_of(item: UserMessageItem | None) -> str:
    if item is None:
        return ""
    return "".join(getattr(part, "text", "") for part in item.content)


class ScriptedServer(ChatKitServer[Ctx]):
    def __init__(
        self, store: MemoryStore[Ctx], attachment_store: AttachmentStore[Ctx] | None = None
    ) -> None:
        super().__init__(store, attachment_store)
        self.script = Script()

    async def add_feedback(self, thread_id: str, item_ids: list[str], feedback: Any, context: Ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError("feedback backend down")

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        text = _text_of(input_user_message)
        item = AssistantMessageItem(
            id=self.store.generate_item_id("message", thread, context),
            thread_id=thread.id,
            created_at=datetime.now(),
            content=[],
        )
        yield ThreadItemAddedEvent(item=item)
        if text == "boom":
            raise RuntimeError("model exploded")
        if text.startswith("fail:"):  # a failure that no retry fixes, after renaming the thread
            thread.title = "renamed before failing"
            kind = text.removeprefix("fail:")
            raise {
                "gone": NotFoundError("Attachment atc_1 not found"),
                "verify": AttachmentVerificationError("stored bytes are not a PNG"),
                "config": DatabaseConfigurationError("role 'app' does not exist"),
                "runtime": RuntimeError("model exploded"),
            }[kind]
        if text == "gate":
            await self.script.gate.wait()
        if text.startswith("sleep:"):  # a silent tool call: one delta, a pause, the rest
            yield ThreadItemUpdatedEvent(
                item_id=item.id,
                update=AssistantMessageContentPartTextDelta(content_index=0, delta="thinking "),
            )
            await asyncio.sleep(float(text.removeprefix("sleep:")))
        if text == "hang":
            for delta in ("Hello, ", "wor"):
                yield ThreadItemUpdatedEvent(
                    item_id=item.id,
                    update=AssistantMessageContentPartTextDelta(content_index=0, delta=delta),
                )
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.script.cancelled.append(thread.id)
                raise
        count = int(text.removeprefix("count:")) if text.startswith("count:") else 3
        parts = [f"{text}#{i} " for i in range(count)]
        for part in parts:
            await asyncio.sleep(0)
            yield ThreadItemUpdatedEvent(
                item_id=item.id,
                update=AssistantMessageContentPartTextDelta(content_index=0, delta=part),
            )
        item.content = [AssistantMessageContent(text="".join(parts))]
        yield ThreadItemDoneEvent(item=item)


class StubUploads:
    """A minimal upload backend: one route that authenticates and echoes the attachment id."""

    def routes(self, context_factory: ContextFactory) -> Sequence[BaseRoute]:
        async def upload(request: Request) -> JSONResponse:
            context = await context_factory(request)
            body = await request.body()
            return JSONResponse(
                {
                    "user": context.user_id,
                    "id": request.path_params["attachment_id"],
                    "size": len(body),
                }
            )

        return [Route("/uploads/{attachment_id}", upload, methods=["POST", "PUT"])]


# ---------------------------------------------------------------------------------------------
# Harness


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run `app` under uvicorn on 127.0.0.1 (a free port) in this event loop; yield its URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.ensure_future(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def chatkit(request: pytest.FixtureRequest) -> ScriptedServer:
    """The scripted server; on a store whose writes wait unless a test asks for plain memory."""
    if getattr(request, "param", "slow") == "memory":
        return ScriptedServer(MemoryStore())
    return ScriptedServer(SlowMemoryStore())


@pytest.fixture
async def base_url(chatkit: ScriptedServer) -> AsyncIterator[str]:
    app = chatkit_app(chatkit, context_factory, max_body_size=64 * 1024, uploads=StubUploads())
    async with serve(app) as url:
        yield url


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": "Bearer alice"},
        timeout=10,
        limits=httpx.Limits(max_connections=100),
    ) as client:
        yield client


def user_input(text: str, attachments: Sequence[str] = ()) -> dict[str, Any]:
    """The wire JSON of a user message (built with the test kit's typed builders)."""
    return requests.user_input(text, attachments=attachments).model_dump(
        mode="json", exclude_none=True
    )


def create_req(text: str, attachments: Sequence[str] = ()) -> dict[str, Any]:
    return requests.create_thread(text, attachments=attachments).model_dump(
        mode="json", exclude_none=True
    )


async def stream_events(
    client: httpx.AsyncClient, payload: dict[str, Any]
) -> tuple[httpx.Response, list[dict[str, Any]]]:
    async with client.stream("POST", "/chatkit", json=payload) as response:
        events = []
        if response.headers.get("content-type") == "text/event-stream":
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line.removeprefix("data: ")))
        else:
            await response.aread()
        return response, events


async def post(client: httpx.AsyncClient, payload: dict[str, Any]) -> httpx.Response:
    return await client.post("/chatkit", json=payload)


async def new_thread(client: httpx.AsyncClient, text: str = "hi") -> str:
    response, events = await stream_events(client, create_req(text))
    assert response.status_code == 200
    thread_id: str = events[0]["thread"]["id"]
    return thread_id


def error_of(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()["error"]
    return body


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


# ---------------------------------------------------------------------------------------------
# Successful requests


async def test_streaming_request_is_an_event_stream_with_anti_buffering_headers(
    client: httpx.AsyncClient,
) -> None:
    response, events = await stream_events(client, create_req("hello"))

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache, no-transform"
    assert response.headers["x-accel-buffering"] == "no"
    assert "content-length" not in response.headers
    assert [e["type"] for e in events] == [
        "thread.created",
        "thread.item.done",  # the user message
        "stream_options",
        "thread.item.added",
        *["thread.item.updated"] * 3,
        "thread.item.done",
    ]
    assert events[-1]["item"]["content"][0]["text"] == "hello#0 hello#1 hello#2 "


async def test_non_streaming_request_is_json(client: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client, "hello")

    response = await post(client, {"type": "threads.get_by_id", "params": {"thread_id": thread_id}})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    thread = response.json()
    assert thread["id"] == thread_id
    assert [i["type"] for i in thread["items"]["data"]] == ["user_message", "assistant_message"]


async def test_events_are_flushed_one_by_one(
    client: httpx.AsyncClient, chatkit: ScriptedServer
) -> None:
    async with client.stream("POST", "/chatkit", json=create_req("gate")) as response:
        lines = response.aiter_lines()
        seen: list[str] = []

        async def read_until(event_type: str) -> None:
            async for line in lines:
                if line.startswith("data: "):
                    seen.append(json.loads(line.removeprefix("data: "))["type"])
                    if seen[-1] == event_type:
                        return

        # respond() is blocked on the gate after its first event: that event must already
        # have reached the client, or nothing is flushed until the stream ends.
        await asyncio.wait_for(read_until("thread.item.added"), timeout=5)
        chatkit.script.gate.set()
        await asyncio.wait_for(read_until("thread.item.done"), timeout=5)
    assert seen[-1] == "thread.item.done"


async def test_stream_without_events_is_an_empty_event_stream(client: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    # Retrying after an item the thread does not have yields no events at all (upstream).
    payload = {
        "type": "threads.retry_after_item",
        "params": {"thread_id": thread_id, "item_id": "msg_unknown"},
    }

    response = await post(client, payload)

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.content == b""


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (b"{not json", "invalid_json", "request body is not valid JSON"),
        (b"", "invalid_json", "request body is not valid JSON"),
        (
            b'{"type": "threads.explode", "params": {}}',
            "invalid_request",
            "threads.explode",
        ),
        (b'{"params": {}}', "invalid_request", "Unable to extract tag using discriminator"),
        (
            b'{"type": "threads.get_by_id", "params": {}}',
            "invalid_request",
            "threads.get_by_id.params.thread_id: Field required",
        ),
        (b"[1, 2]", "invalid_request", "not a valid ChatKit request"),
    ],
)
async def test_malformed_body_is_400_naming_the_problem(
    client: httpx.AsyncClient, body: bytes, code: str, fragment: str
) -> None:
    response = await client.post("/chatkit", content=body)

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == code
    assert fragment in error["message"]


async def test_unknown_thread_in_non_streaming_request_is_404(client: httpx.AsyncClient) -> None:
    response = await post(client, {"type": "threads.get_by_id", "params": {"thread_id": "thr_x"}})

    assert response.status_code == 404
    assert error_of(response) == {"code": "not_found", "message": "Thread thr_x not found"}


async def test_unknown_thread_in_streaming_request_is_404_not_a_broken_stream(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {
        "type": "threads.add_user_message",
        "params": {"thread_id": "thr_missing", "input": user_input("hi")},
    }
    response, events = await stream_events(client, payload)

    assert response.status_code == 404
    assert events == []
    assert error_of(response) == {"code": "not_found", "message": "Thread thr_missing not found"}
    assert error_records(caplog) == []  # a client error, not a server failure


async def test_another_users_thread_is_404(client: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    payload = {
        "type": "threads.add_user_message",
        "params": {"thread_id": thread_id, "input": user_input("hi")},
    }

    response = await client.post("/chatkit", json=payload, headers={"Authorization": "Bearer bob"})

    assert response.status_code == 404


async def test_items_list_of_an_unknown_or_another_users_thread_is_an_empty_page(
    client: httpx.AsyncClient,
) -> None:
    """Upstream's contract (docs/asgi.md "items.list"): an empty last page, the same for a
    thread that does not exist and for another user's, so nothing tells them apart."""
    thread_id = await new_thread(client)
    own = await post(client, {"type": "items.list", "params": {"thread_id": thread_id}})
    assert own.status_code == 200 and len(own.json()["data"]) == 2

    answers = [
        await client.post(
            "/chatkit",
            json={"type": "items.list", "params": {"thread_id": tid}},
            headers={"Authorization": "Bearer bob"},
        )
        for tid in (thread_id, "thr_does_not_exist")
    ]
    for response in answers:
        assert response.status_code == 200
        assert response.json() == {"data": [], "has_more": False}
    assert answers[0].content == answers[1].content
    # The requests that open a thread do say 404.
    opened = await client.post(
        "/chatkit",
        json={"type": "threads.get_by_id", "params": {"thread_id": thread_id}},
        headers={"Authorization": "Bearer bob"},
    )
    assert opened.status_code == 404


async def test_failure_before_first_event_is_500_and_logged_once(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {
        "type": "threads.add_user_message",
        "params": {"thread_id": "thr_broken", "input": user_input("hi")},
    }
    response, events = await stream_events(client, payload)

    assert response.status_code == 500
    assert events == []
    assert error_of(response) == {"code": "internal_error", "message": "internal server error"}
    [record] = error_records(caplog)
    assert "op=threads.add_user_message" in record.getMessage()
    assert "thread_id=thr_broken" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_tool_output_without_pending_tool_call_is_400_not_logged_as_error(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    thread_id = await new_thread(client)
    caplog.clear()
    # The newest item is an assistant message, not a pending client tool call: upstream raises
    # ValueError before any event.
    payload = {
        "type": "threads.add_client_tool_output",
        "params": {"thread_id": thread_id, "result": {}},
    }
    response, events = await stream_events(client, payload)

    assert response.status_code == 400
    assert events == []
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert thread_id in error["message"] and "ClientToolCallItem" in error["message"]
    assert error_records(caplog) == []


async def test_retry_after_an_item_that_is_not_a_user_message_is_400(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    thread_id = await new_thread(client)
    items = (await post(client, {"type": "items.list", "params": {"thread_id": thread_id}})).json()
    [assistant] = [i for i in items["data"] if i["type"] == "assistant_message"]
    caplog.clear()
    payload = {
        "type": "threads.retry_after_item",
        "params": {"thread_id": thread_id, "item_id": assistant["id"]},
    }
    response, _ = await stream_events(client, payload)

    assert response.status_code == 400
    assert error_of(response) == {
        "code": "invalid_request",
        "message": f"Item {assistant['id']} is not a user message",
    }
    assert error_records(caplog) == []


@pytest.mark.parametrize("op", ["threads.list", "items.list"])
@pytest.mark.parametrize("limit", [-1, -(2**63)])
async def test_negative_page_limit_is_400_naming_the_limit(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, op: str, limit: int
) -> None:
    thread_id = await new_thread(client)
    params: dict[str, Any] = {"limit": limit}
    if op == "items.list":
        params["thread_id"] = thread_id
    response = await post(client, {"type": op, "params": params})

    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert f"params.limit must not be negative, got {limit}" in error["message"]
    assert error_records(caplog) == []
    # 0 is upstream's default page size; positive limits work, large ones too (the store caps
    # the page).
    for good in (0, 1, 10**6):
        response = await post(client, {"type": op, "params": {**params, "limit": good}})
        assert response.status_code == 200, response.text


async def test_failure_after_stream_started_ends_with_error_event_logged_once(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # threads.create sends thread.created, then loads the attachment, which fails like a broken
    # store: a server fault after the 200 was committed. A retry may succeed.
    response, events = await stream_events(client, create_req("hi", attachments=["atc_broken"]))

    assert response.status_code == 200
    assert [e["type"] for e in events] == ["thread.created", "error"]
    assert events[-1] == {"type": "error", "code": "stream.error", "allow_retry": True}
    thread_id = events[0]["thread"]["id"]
    [record] = error_records(caplog)
    assert record.name == "chatkit_kit.asgi"
    assert "op=threads.create" in record.getMessage()
    assert f"thread_id={thread_id}" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_invalid_attachment_after_stream_started_is_an_error_without_retry(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # An unknown attachment id: NotFoundError after thread.created. The same request can never
    # succeed, so the error event must not offer a retry, and it is the client's error.
    response, events = await stream_events(client, create_req("hi", attachments=["atc_nope"]))

    assert response.status_code == 200
    assert [e["type"] for e in events] == ["thread.created", "error"]
    assert events[-1] == {"type": "error", "code": "stream.error", "allow_retry": False}
    assert error_records(caplog) == []


@pytest.mark.parametrize(
    ("kind", "error_type"),
    [("unavailable", "DatabaseUnavailableError"), ("timeout", "DatabaseTimeoutError")],
)
async def test_database_unavailable_is_503_with_retry_after_and_no_details(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, kind: str, error_type: str
) -> None:
    caplog.set_level(logging.WARNING, logger="chatkit_kit.asgi")
    plain = await post(
        client, {"type": "threads.get_by_id", "params": {"thread_id": f"thr_{kind}"}}
    )
    streaming, events = await stream_events(
        client,
        {
            "type": "threads.add_user_message",
            "params": {"thread_id": f"thr_{kind}", "input": user_input("hi")},
        },
    )
    for response in (plain, streaming):
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        error = error_of(response)
        assert error["code"] == "service_unavailable"
        assert "db.internal" not in response.text
    assert events == []
    # After the stream started, the error event offers a retry.
    started, events = await stream_events(client, create_req("hi", [f"atc_{kind}"]))
    assert started.status_code == 200
    assert events[-1] == {"type": "error", "code": "stream.error", "allow_retry": True}
    # Logged as warnings naming the operation, without tracebacks.
    assert error_records(caplog) == []
    warnings = [r for r in caplog.records if r.name == "chatkit_kit.asgi"]
    assert len(warnings) == 3
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in warnings)
    assert "op=threads.get_by_id" in warnings[0].getMessage()
    assert error_type in warnings[0].getMessage()


async def test_database_misconfiguration_is_500_without_details_or_retry(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    plain = await post(
        client, {"type": "threads.get_by_id", "params": {"thread_id": "thr_misconfigured"}}
    )
    assert plain.status_code == 500
    assert error_of(plain) == {"code": "internal_error", "message": "internal server error"}
    assert "retry-after" not in plain.headers
    # After the stream started, no retry is offered: the same request fails until someone
    # fixes the database or its configuration.
    started, events = await stream_events(client, create_req("hi", ["atc_misconfigured"]))
    assert started.status_code == 200
    assert events[-1] == {"type": "error", "code": "stream.error", "allow_retry": False}
    assert "db.internal" not in plain.text
    records = error_records(caplog)
    assert len(records) == 2 and all(r.exc_info is not None for r in records)


async def test_exception_in_respond_is_an_error_event_logged_once_with_op_and_thread(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response, events = await stream_events(client, create_req("boom"))

    assert response.status_code == 200
    assert events[-1] == {"type": "error", "code": "stream.error", "allow_retry": True}
    thread_id = events[0]["thread"]["id"]
    [record] = error_records(caplog)  # upstream's own log line, tagged by the endpoint
    assert "model exploded" in record.getMessage()
    assert f"(op=threads.create, thread_id={thread_id})" in record.getMessage()
    assert record.chatkit_op == "threads.create"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kind", "allow_retry"),
    [("gone", False), ("verify", False), ("config", False), ("runtime", True)],
)
async def test_error_event_from_respond_offers_a_retry_only_when_one_can_succeed(
    client: httpx.AsyncClient, kind: str, allow_retry: bool
) -> None:
    """Upstream turns every exception in respond() into a retryable error event; the endpoint
    withdraws the retry for the exceptions it answers with a 4xx (or a configuration error)
    before a stream starts, and keeps what upstream sends after the event."""
    response, events = await stream_events(client, create_req(f"fail:{kind}"))

    assert response.status_code == 200
    types = [e["type"] for e in events]
    assert types[-2:] == ["error", "thread.updated"]
    assert events[-2] == {"type": "error", "code": "stream.error", "allow_retry": allow_retry}
    assert events[-1]["thread"]["title"] == "renamed before failing"
    # The next request starts clean: a retryable failure is not carried over.
    _, later = await stream_events(client, create_req("boom"))
    assert later[-1] == {"type": "error", "code": "stream.error", "allow_retry": True}


async def test_failure_in_non_streaming_request_is_500_and_logged_once(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {
        "type": "items.feedback",
        "params": {"thread_id": "thr_1", "item_ids": ["msg_1"], "kind": "positive"},
    }
    response = await post(client, payload)

    assert response.status_code == 500
    assert error_of(response)["code"] == "internal_error"
    assert "feedback backend down" not in response.text  # no internals leak to clients
    [record] = error_records(caplog)
    assert "op=items.feedback" in record.getMessage()
    assert "thread_id=thr_1" in record.getMessage()


async def test_context_factory_rejections_keep_their_status(client: httpx.AsyncClient) -> None:
    payload = {"type": "threads.list", "params": {}}

    anonymous = await client.post("/chatkit", json=payload, headers={"Authorization": ""})
    blocked = await client.post(
        "/chatkit", json=payload, headers={"Authorization": "Bearer blocked"}
    )

    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert error_of(anonymous) == {"code": "unauthorized", "message": "missing bearer token"}
    assert blocked.status_code == 403
    assert error_of(blocked) == {"code": "forbidden", "message": "user is blocked"}


async def test_other_methods_are_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/chatkit")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert error_of(response)["code"] == "method_not_allowed"


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    # Just over the limit: a body much larger than the limit would still be in flight when the
    # server answers early and closes, and the reset could reach the client before the 413.
    body = json.dumps(create_req("x" * 66_000)).encode()

    response = await client.post("/chatkit", content=body)

    assert response.status_code == 413
    assert error_of(response) == {
        "code": "request_too_large",
        "message": "request body exceeds the limit of 65536 bytes (max_body_size)",
    }


async def test_chunked_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 8192
        yield b" " * 100

    response = await client.post("/chatkit", content=chunks())

    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"


async def _raw_request(base_url: str, head: str, body: bytes) -> bytes:
    """Send a request head and part of a body; return the response head without sending more."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    finally:
        writer.close()


async def test_413_is_sent_without_reading_the_whole_body(base_url: str) -> None:
    # Announced size: refused from the header, before any of the 10 GB is sent.
    head = await _raw_request(
        base_url,
        "POST /chatkit HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer alice\r\n"
        "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n",
        b"{",
    )
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()

    # Chunked: refused as soon as the bytes received pass the limit; the stream never ends.
    chunk = b"x" * (64 * 1024 + 1)
    head = await _raw_request(
        base_url,
        "POST /chatkit HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer alice\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"%x\r\n" % len(chunk) + chunk + b"\r\n",
    )
    assert head.startswith(b"HTTP/1.1 413 ")


def test_invalid_settings_are_rejected() -> None:
    server = ScriptedServer(MemoryStore())
    with pytest.raises(ValueError, match="max_body_size must be at least 1 byte or None, got 0"):
        ChatKitEndpoint(server, context_factory, max_body_size=0)
    with pytest.raises(ValueError, match="path must start with '/'"):
        chatkit_routes(server, context_factory, path="chatkit")
    with pytest.raises(ValueError, match="path must start with '/' and not end with '/'"):
        chatkit_routes(server, context_factory, path="/chatkit/")
    with pytest.raises(ValueError, match="CORSConfig needs allow_origins"):
        chatkit_app(server, context_factory, cors=CORSConfig())
    with pytest.raises(TypeError, match=r"write \['https://a.example'\]"):
        chatkit_app(server, context_factory, cors=CORSConfig(allow_origins="https://a.example"))
    with pytest.raises(ValueError, match="list the allowed origins"):
        chatkit_app(
            server, context_factory, cors=CORSConfig(allow_origins=["*"], allow_credentials=True)
        )
    assert DEFAULT_MAX_BODY_SIZE == 4 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Disconnects and concurrency


async def test_disconnect_mid_stream_cancels_and_keeps_the_partial_message(
    client: httpx.AsyncClient, chatkit: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    thread_id = ""
    deltas = 0
    async with client.stream("POST", "/chatkit", json=create_req("hang")) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            event = json.loads(line.removeprefix("data: "))
            if event["type"] == "thread.created":
                thread_id = event["thread"]["id"]
            if event["type"] == "thread.item.updated":
                deltas += 1
                if deltas == 2:
                    break  # leaving the block closes the connection mid-stream
    assert thread_id

    # Upstream's handle_stream_cancelled stores the partial assistant message (through a store
    # whose writes really wait) and a hidden "cancelled" marker.
    items: list[dict[str, Any]] = []
    for _ in range(200):
        response = await post(
            client, {"type": "threads.get_by_id", "params": {"thread_id": thread_id}}
        )
        items = response.json()["items"]["data"]
        if len(items) == 2:
            break
        await asyncio.sleep(0.02)
    assert chatkit.script.cancelled == [thread_id]
    assert [i["type"] for i in items] == ["user_message", "assistant_message"]
    assert items[1]["content"][0]["text"] == "Hello, wor"
    stored = await chatkit.store.load_thread_items(thread_id, None, 10, "asc", Ctx("alice"))
    assert [type(i).__name__ for i in stored.data] == [
        "UserMessageItem",
        "AssistantMessageItem",
        "SDKHiddenContextItem",
    ]

    # The server keeps serving.
    response, events = await stream_events(client, create_req("after"))
    assert response.status_code == 200
    assert events[-1]["type"] == "thread.item.done"
    assert error_records(caplog) == []  # a client leaving is not a server error


async def test_disconnect_of_one_stream_leaves_others_running(
    client: httpx.AsyncClient, chatkit: ScriptedServer, base_url: str
) -> None:
    async def gated() -> list[dict[str, Any]]:
        return (await stream_events(client, create_req("gate")))[1]

    survivor = asyncio.ensure_future(gated())
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": "Bearer bob"}, timeout=10
    ) as other:
        async with other.stream("POST", "/chatkit", json=create_req("hang")) as response:
            async for line in response.aiter_lines():
                if "thread.item.updated" in line:
                    break
    for _ in range(200):
        if chatkit.script.cancelled:
            break
        await asyncio.sleep(0.01)
    assert len(chatkit.script.cancelled) == 1
    chatkit.script.gate.set()
    events = await asyncio.wait_for(survivor, timeout=5)
    assert events[-1]["type"] == "thread.item.done"


@pytest.mark.parametrize("chatkit", ["memory", "slow"], indirect=True)
async def test_fifty_concurrent_streams_complete_consistently(client: httpx.AsyncClient) -> None:
    texts = [f"s{n}" for n in range(50)]

    results = await asyncio.gather(
        *(
            stream_events(client, create_req(f"count:{5 + n % 7}" if n % 2 else t))
            for n, t in enumerate(texts)
        )
    )

    thread_ids = set()
    for n, (response, events) in enumerate(results):
        text = f"count:{5 + n % 7}" if n % 2 else texts[n]
        count = 5 + n % 7 if n % 2 else 3
        expected = "".join(f"{text}#{i} " for i in range(count))
        assert response.status_code == 200
        assert [e["type"] for e in events] == [
            "thread.created",
            "thread.item.done",
            "stream_options",
            "thread.item.added",
            *["thread.item.updated"] * count,
            "thread.item.done",
        ]
        streamed = "".join(
            e["update"]["delta"] for e in events if e["type"] == "thread.item.updated"
        )
        assert streamed == expected
        assert events[-1]["item"]["content"][0]["text"] == expected
        thread_id = events[0]["thread"]["id"]
        thread_ids.add(thread_id)
        response = await post(
            client, {"type": "threads.get_by_id", "params": {"thread_id": thread_id}}
        )
        stored = response.json()["items"]["data"]
        assert [i["type"] for i in stored] == ["user_message", "assistant_message"]
        assert stored[0]["content"][0]["text"] == text
        assert stored[1]["content"][0]["text"] == expected
    assert len(thread_ids) == 50
    listed = await post(client, {"type": "threads.list", "params": {"limit": 100}})
    assert {t["id"] for t in listed.json()["data"]} == thread_ids


# ---------------------------------------------------------------------------------------------
# Mounting: uploads, FastAPI, CORS


async def test_upload_routes_mount_under_the_chatkit_path(client: httpx.AsyncClient) -> None:
    response = await client.put("/chatkit/uploads/atc_1", content=b"12345")
    anonymous = await client.put(
        "/chatkit/uploads/atc_1", content=b"12345", headers={"Authorization": ""}
    )

    assert response.status_code == 200
    assert response.json() == {"user": "alice", "id": "atc_1", "size": 5}
    assert anonymous.status_code == 401
    # The provider's own routes raise HTTPException; chatkit_app answers in the endpoint's shape.
    assert error_of(anonymous) == {"code": "unauthorized", "message": "missing bearer token"}
    assert anonymous.headers["www-authenticate"] == "Bearer"
    elsewhere = await client.get("/not-chatkit")
    assert elsewhere.status_code == 404 and error_of(elsewhere)["code"] == "not_found"


async def test_routes_in_a_fastapi_app() -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    server = ScriptedServer(MemoryStore())
    app.router.routes.extend(chatkit_routes(server, context_factory, path="/api/chatkit"))
    async with (
        serve(app) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": "Bearer alice"}, timeout=10
        ) as client,
    ):
        async with client.stream("POST", "/api/chatkit", json=create_req("hello")) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            body = await response.aread()
        missing = await client.post(
            "/api/chatkit", json={"type": "threads.get_by_id", "params": {"thread_id": "thr_x"}}
        )
        health_response = await client.get("/health")
    assert body.count(b"data: ") == 8
    assert missing.status_code == 404
    assert health_response.json() == {"status": "ok"}


async def test_chatkit_app_mounted_inside_another_app() -> None:
    server = ScriptedServer(MemoryStore())
    outer = Starlette()
    outer.mount("/api", chatkit_app(server, context_factory))
    async with (
        serve(outer) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": "Bearer alice"}, timeout=10
        ) as client,
    ):
        response = await client.post("/api/chatkit", json={"type": "threads.list", "params": {}})
    assert response.status_code == 200
    assert response.json() == {"data": [], "has_more": False}


async def test_cors_for_the_chatkit_web_component() -> None:
    server = ScriptedServer(MemoryStore())
    origin = "https://app.example.com"
    app = chatkit_app(server, context_factory, cors=CORSConfig(allow_origins=[origin]))
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
        preflight = await client.options(
            "/chatkit",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, "
                "chatkit-frame-instance-id",
            },
        )
        foreign = await client.options(
            "/chatkit",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        async with client.stream(
            "POST",
            "/chatkit",
            json=create_req("hello"),
            headers={"Origin": origin, "Authorization": "Bearer alice"},
        ) as streamed:
            body = await streamed.aread()
        # Middleware edits response headers in place: nothing may carry over between responses.
        foreign_stream = await client.post(
            "/chatkit",
            json=create_req("hello"),
            headers={"Origin": "https://evil.example", "Authorization": "Bearer alice"},
        )

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "chatkit-frame-instance-id" in preflight.headers["access-control-allow-headers"]
    assert foreign.status_code == 400
    assert "access-control-allow-origin" not in foreign.headers
    assert streamed.status_code == 200
    assert streamed.headers["access-control-allow-origin"] == origin
    assert body.count(b"data: ") == 8
    assert foreign_stream.status_code == 200
    assert "access-control-allow-origin" not in foreign_stream.headers


def test_missing_starlette_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "starlette", None)
    monkeypatch.delitem(sys.modules, "chatkit_kit.asgi")

    from chatkit_kit._install import install_command

    with pytest.raises(ImportError) as raised:
        importlib.import_module("chatkit_kit.asgi")
    assert str(raised.value).endswith(install_command("server")), raised.value


# ---------------------------------------------------------------------------------------------
# The endpoint driven directly through ASGI, for timings a real socket cannot pin down


def _scope(headers: Sequence[tuple[bytes, bytes]] = ((b"authorization", b"Bearer alice"),)) -> Any:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/chatkit",
        "raw_path": b"/chatkit",
        "root_path": "",
        "query_string": b"",
        "headers": list(headers),
        "server": ("test", 80),
        "client": ("127.0.0.1", 1234),
    }


@pytest.mark.parametrize("client_gone", ["disconnect message", "send raises OSError"])
async def test_client_gone_while_an_event_is_being_sent_still_keeps_the_partial_message(
    client_gone: str,
) -> None:
    # The stream is parked at `yield` while its event is sent. Cancelling there would close the
    # generator with GeneratorExit and skip upstream's CancelledError handling.
    server = ScriptedServer(SlowMemoryStore())
    endpoint = ChatKitEndpoint(server, context_factory)
    body = json.dumps(create_req("hang")).encode()
    sending, disconnected, never = asyncio.Event(), asyncio.Event(), asyncio.Event()
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if b'"delta":"wor"' in message.get("body", b""):
            sending.set()
            if client_gone == "send raises OSError":
                raise OSError("connection reset")
            await never.wait()

    call = asyncio.ensure_future(endpoint(_scope(), receive, send))
    await asyncio.wait_for(sending.wait(), timeout=5)
    disconnected.set()
    await asyncio.wait_for(call, timeout=5)

    [thread_id] = server.script.cancelled
    stored = await server.store.load_thread_items(thread_id, None, 10, "asc", Ctx("alice"))
    assert [type(i).__name__ for i in stored.data] == [
        "UserMessageItem",
        "AssistantMessageItem",
        "SDKHiddenContextItem",
    ]
    assert isinstance(stored.data[1], AssistantMessageItem)
    assert stored.data[1].content[0].text == "Hello, wor"


async def test_unexpected_context_factory_failure_is_500_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: Request) -> Ctx:
        raise KeyError("session store unreachable")

    endpoint = ChatKitEndpoint(ScriptedServer(MemoryStore()), broken)
    messages: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message)

    await endpoint(_scope(), receive, send)

    assert messages[0]["status"] == 500
    assert json.loads(messages[1]["body"]) == {
        "error": {"code": "internal_error", "message": "internal server error"}
    }
    [record] = error_records(caplog)
    assert record.getMessage() == "ChatKit context factory failed"


async def test_cancelled_request_task_does_not_cut_upstream_cleanup_short() -> None:
    # Server shutdown, or middleware running the app in an anyio task group, cancels the request
    # task, possibly again and again; the stream's own task still finishes its cancellation
    # handling, store writes included.
    server = ScriptedServer(SlowMemoryStore())
    endpoint = ChatKitEndpoint(server, context_factory)
    body = json.dumps(create_req("hang")).encode()
    sent_wor, forever = asyncio.Event(), asyncio.Event()
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": body, "more_body": False}
        await forever.wait()
        return {"type": "http.disconnect"}  # pragma: no cover

    async def send(message: MutableMapping[str, Any]) -> None:
        if b'"delta":"wor"' in message.get("body", b""):
            sent_wor.set()

    call = asyncio.ensure_future(endpoint(_scope(), receive, send))
    await asyncio.wait_for(sent_wor.wait(), timeout=5)
    for _ in range(5):
        call.cancel()
        await asyncio.sleep(0.002)
    with pytest.raises(asyncio.CancelledError):
        await call

    stored: list[ThreadItem] = []
    for _ in range(250):
        if server.script.cancelled:
            page = await server.store.load_thread_items(
                server.script.cancelled[0], None, 10, "asc", Ctx("alice")
            )
            stored = page.data
            if len(stored) == 3:
                break
        await asyncio.sleep(0.02)
    assert [type(i).__name__ for i in stored] == [
        "UserMessageItem",
        "AssistantMessageItem",
        "SDKHiddenContextItem",
    ]


class PolicyOnlyAttachments(AttachmentStore[Ctx]):
    """Checks the declared upload against a policy, as our backends do, and creates nothing."""

    policy = UploadPolicy(max_size=100, allowed_mime_types=("text/plain",))

    async def create_attachment(self, input: AttachmentCreateParams, context: Ctx) -> Attachment:
        self.policy.check(input.name, input.size, input.mime_type)
        return FileAttachment(id="atc_1", name=input.name, mime_type=input.mime_type)

    async def delete_attachment(self, attachment_id: str, context: Ctx) -> None:
        return None


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"name": "big.txt", "size": 101, "mime_type": "text/plain"}, 413, "attachment_too_large"),
        (
            {"name": "x.exe", "size": 10, "mime_type": "application/x-msdownload"},
            415,
            "unsupported_media_type",
        ),
        (
            {"name": "../etc/passwd", "size": 10, "mime_type": "text/plain"},
            400,
            "attachment_not_allowed",
        ),
    ],
)
async def test_attachment_policy_errors_keep_their_status(
    params: dict[str, Any], status: int, code: str
) -> None:
    server = ScriptedServer(MemoryStore(), attachment_store=PolicyOnlyAttachments())
    async with serve(chatkit_app(server, context_factory)) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer a"}) as http:
            response = await http.post(
                "/chatkit", json={"type": "attachments.create", "params": params}
            )
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code
    assert str(params["size"] if status == 413 else "") in error_of(response)["message"]


async def test_two_phase_create_against_a_direct_upload_backend_is_400_naming_the_strategy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    direct = DirectUploadAttachmentStore(
        store, LocalBlobStorage(tmp_path), base_url="https://api.example.com/chatkit"
    )
    server = ScriptedServer(store, attachment_store=direct)
    params = {"name": "a.txt", "size": 3, "mime_type": "text/plain"}
    async with serve(chatkit_app(server, context_factory, uploads=direct)) as url:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": "Bearer a"}) as http:
            response = await http.post(
                "/chatkit", json={"type": "attachments.create", "params": params}
            )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "upload_strategy_mismatch"
    assert "direct" in error["message"] and "two-phase" in error["message"]
    assert "https://api.example.com/chatkit/attachments/upload" in error["message"]
    assert error_records(caplog) == []


async def test_attachment_requests_without_an_attachment_store_are_400(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    params = {"name": "a.txt", "size": 3, "mime_type": "text/plain"}
    create = await post(client, {"type": "attachments.create", "params": params})
    delete = await post(client, {"type": "attachments.delete", "params": {"attachment_id": "a"}})
    for response in (create, delete):
        assert response.status_code == 400
        assert error_of(response)["code"] == "attachments_not_supported"
    assert error_records(caplog) == []


async def test_transcribe_on_a_server_without_it_is_501_and_bad_audio_is_400(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    params = {"audio_base64": "aGVsbG8=", "mime_type": "audio/webm"}
    unsupported = await post(client, {"type": "input.transcribe", "params": params})
    assert unsupported.status_code == 501
    assert error_of(unsupported) == {
        "code": "not_implemented",
        "message": "this server does not support input.transcribe",
    }
    bad = await post(
        client, {"type": "input.transcribe", "params": {**params, "audio_base64": "abc"}}
    )
    assert bad.status_code == 400
    assert error_of(bad)["code"] == "invalid_request"
    assert "audio_base64" in error_of(bad)["message"]
    assert error_records(caplog) == []


async def test_sync_action_on_an_item_that_is_not_a_widget_is_400(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    thread_id = await new_thread(client)
    items = (await post(client, {"type": "items.list", "params": {"thread_id": thread_id}})).json()
    payload = {
        "type": "threads.sync_custom_action",
        "params": {
            "thread_id": thread_id,
            "item_id": items["data"][0]["id"],
            "action": {"type": "noop", "payload": {}},
        },
    }
    response = await post(client, payload)
    assert response.status_code == 400
    assert error_of(response) == {
        "code": "invalid_request",
        "message": "threads.sync_custom_action requires a widget sender item",
    }
    assert error_records(caplog) == []


async def test_unknown_paths_under_the_chatkit_path_are_json_404(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/chatkit/nothing/here")
    assert response.status_code == 404
    posted = await client.post("/chatkit/nothing/here")
    assert posted.status_code == 404 and error_of(posted)["code"] == "not_found"
    assert error_of(response) == {
        "code": "not_found",
        "message": "no route for /chatkit/nothing/here",
    }


def test_client_error_codes_follow_their_status() -> None:
    class Gone(ClientRequestError):
        status_code = 410

    class Conflict(ClientRequestError):
        status_code = 409

    class Named(Conflict):
        code = "thread_locked"

    assert (Gone.code, Conflict.code, Named.code) == ("client_error", "conflict", "thread_locked")
    assert ClientRequestError.code == "bad_request"
    for error in (
        AttachmentError,
        AttachmentPolicyError,
        AttachmentTooLargeError,
        AttachmentTypeNotAllowedError,
        AttachmentVerificationError,
        InvalidUploadError,
    ):
        # A code that does not name another status's generic code.
        generic = {code for status, code in STATUS_CODES.items() if status != error.status_code}
        assert error.code not in generic, error
    with pytest.raises(TypeError, match="must be a 4xx status"):

        class ServerFault(ClientRequestError):
            status_code = 500


# ---------------------------------------------------------------------------------------------
# SSE keepalive


async def _timed_lines(
    http: httpx.AsyncClient, payload: dict[str, Any]
) -> tuple[httpx.Response, list[tuple[float, str]]]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    lines: list[tuple[float, str]] = []
    async with http.stream("POST", "/chatkit", json=payload) as response:
        async for line in response.aiter_lines():
            lines.append((loop.time() - start, line))
    return response, lines


@asynccontextmanager
async def keepalive_client(
    keepalive: float | None, sent: list[tuple[float, bytes]] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a live server with `keepalive`; `sent` collects, with the server loop's clock
    (the keepalive timer's), every response body part the app sends."""
    server = ScriptedServer(SlowMemoryStore())
    app = chatkit_app(server, context_factory, keepalive=keepalive)
    if sent is not None:
        inner, loop = app, asyncio.get_running_loop()

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            async def record(message: Any) -> None:
                if message["type"] == "http.response.body":
                    sent.append((loop.time(), message.get("body", b"")))
                await send(message)

            await inner(scope, receive, record)

        app = recording  # type: ignore[assignment]
    async with serve(app) as url:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": "Bearer alice"}, timeout=10
        ) as http:
            http.chatkit = server  # type: ignore[attr-defined]
            yield http


async def test_silent_stream_sends_keepalive_comments_over_http() -> None:
    async with keepalive_client(0.25) as http:
        response, lines = await _timed_lines(http, create_req("sleep:1.5"))

    assert response.status_code == 200
    comments = [(t, line) for t, line in lines if line.startswith(":")]
    events = [
        json.loads(line.removeprefix("data: ")) for _, line in lines if line.startswith("data: ")
    ]
    # Every line is an event, a keepalive comment, or the blank line ending one of them.
    assert all(line == "" or line.startswith(("data: ", ": keepalive")) for _, line in lines)
    assert {line for _, line in comments} == {": keepalive"}
    # At most one per 0.25 s of silence after the delta as this client saw it (fewer if this
    # machine is busy), at least one, none before it.
    [delta_at] = [t for t, line in lines if line.startswith("data: ") and "thinking" in line]
    ended_at = lines[-1][0]
    assert 1 <= len(comments) <= (ended_at - delta_at) / 0.25 + 1, (comments, ended_at)
    assert all(t > delta_at for t, _ in comments)
    # The stream itself is complete and the message was stored.
    assert events[-1]["type"] == "thread.item.done"
    assert events[-1]["item"]["content"][0]["text"].startswith("sleep:1.5#0")


@pytest.mark.parametrize("keepalive", [0, None])
async def test_keepalive_0_or_none_turns_it_off(keepalive: float | None) -> None:
    async with keepalive_client(keepalive) as http:
        response, lines = await _timed_lines(http, create_req("sleep:0.5"))

    assert response.status_code == 200
    assert not [line for _, line in lines if line.startswith(":")]


async def test_busy_stream_sends_no_keepalive() -> None:
    """While events flow, no comment: each one the server sent came a whole interval after the
    body part before it, on the timer's own clock (so a busy machine, which can stall the stream
    for longer than the interval, makes a legitimate comment, never a failure)."""
    interval = 0.02
    sent: list[tuple[float, bytes]] = []
    async with keepalive_client(interval, sent) as http:
        response, lines = await _timed_lines(http, create_req("count:600"))

    assert response.status_code == 200
    assert sum(1 for _, line in lines if line.startswith("data: ")) > 600
    assert len(sent) > 2
    for (before, _), (at, body) in itertools.pairwise(sent):
        if body.startswith(b":"):
            assert body == b": keepalive\n\n"
            assert at - before >= interval, f"a comment {at - before:.4f} s after the last part"


async def test_disconnect_during_keepalives_still_keeps_the_partial_message() -> None:
    async with keepalive_client(0.05) as http:
        server: ScriptedServer = http.chatkit  # type: ignore[attr-defined]
        comments = 0
        async with http.stream("POST", "/chatkit", json=create_req("hang")) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and '"thread.created"' in line:
                    thread_id = json.loads(line.removeprefix("data: "))["thread"]["id"]
                comments += line == ": keepalive"
                if comments == 3:
                    break
        for _ in range(200):
            if server.script.cancelled:
                break
            await asyncio.sleep(0.01)
        assert server.script.cancelled == [thread_id]
        items = await post(http, {"type": "items.list", "params": {"thread_id": thread_id}})
        texts = [
            part["text"]
            for item in items.json()["data"]
            if item["type"] == "assistant_message"
            for part in item["content"]
        ]
        assert texts == ["Hello, wor"]


def test_keepalive_settings_are_checked() -> None:
    server = ScriptedServer(MemoryStore())
    assert DEFAULT_KEEPALIVE == 15
    assert ChatKitEndpoint(server, context_factory).keepalive == 15
    assert ChatKitEndpoint(server, context_factory, keepalive=0).keepalive is None
    for bad in (-1, 0.001, 7200, float("nan")):
        with pytest.raises(ValueError, match="keepalive must be 0"):
            ChatKitEndpoint(server, context_factory, keepalive=bad)
    with pytest.raises(TypeError, match="keepalive must be a number"):
        ChatKitEndpoint(server, context_factory, keepalive="15")  # type: ignore[arg-type]
