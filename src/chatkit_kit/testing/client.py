"""A ChatKit client for testing an app over HTTP, the way ChatKit.js talks to it.

`ChatKitTestClient` sends upstream's request models (build them with the methods here or with
`chatkit_kit.testing.requests`), parses streamed replies into upstream's `ThreadStreamEvent`
types and non-streaming replies into upstream's models, and uploads files with both ChatKit
strategies (two-phase: `attachments.create`, then the bytes to the upload URL; direct: a
multipart POST to the upload route). It talks to an ASGI app in process
(`httpx.ASGITransport`) or to a server URL over real HTTP.

```python
async with ChatKitTestClient(app, headers={"Authorization": "Bearer alice"}) as chat:
    turn = await chat.create_thread("Hello")
    assert turn.assistant_text == "Hi!"
```
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from chatkit.types import (
    AssistantMessageItem,
    Attachment,
    ErrorEvent,
    FeedbackKind,
    Page,
    StreamingReq,
    SyncCustomActionResponse,
    Thread,
    ThreadCreatedEvent,
    ThreadItem,
    ThreadItemDoneEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    TranscriptionResult,
)
from pydantic import BaseModel, TypeAdapter
from typing_extensions import Unpack

from . import requests as build
from .requests import ChatKitRequest

__all__ = ["ChatKitHTTPError", "ChatKitTestClient", "StreamedTurn", "parse_sse"]

_EVENTS: TypeAdapter[ThreadStreamEvent] = TypeAdapter(ThreadStreamEvent)
_M = TypeVar("_M", bound=BaseModel)

Order = Literal["asc", "desc"]


class ChatKitHTTPError(AssertionError):
    """The endpoint answered with an HTTP error status; `.status` and `.body` say what."""

    def __init__(self, status: int, body: Any, request_type: str) -> None:
        super().__init__(f"{request_type} answered HTTP {status}: {body!r}")
        self.status = status
        self.body = body


def parse_sse(body: bytes | str) -> list[ThreadStreamEvent]:
    """Parse a ChatKit event stream (`data:` frames, comments ignored) into upstream events."""
    text = body.decode() if isinstance(body, bytes) else body
    events: list[ThreadStreamEvent] = []
    data: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line:
            if data:
                events.append(_EVENTS.validate_json("\n".join(data)))
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        # ":" comments (keepalives), "event:", "id:" and "retry:" lines carry no ChatKit data
    if data:
        events.append(_EVENTS.validate_json("\n".join(data)))
    return events


@dataclass
class StreamedTurn:
    """The events of one streamed request, with the common questions answered."""

    events: list[ThreadStreamEvent] = field(default_factory=list)

    @property
    def thread(self) -> Thread | None:
        """The thread a `threads.create` made (from its `thread.created` event)."""
        for event in self.events:
            if isinstance(event, ThreadCreatedEvent):
                return event.thread
        return None

    @property
    def thread_id(self) -> str:
        """The id of the created thread; AssertionError when there is none."""
        thread = self.thread
        if thread is None:
            raise AssertionError(f"no thread.created event among {self.types}")
        return thread.id

    @property
    def types(self) -> list[str]:
        """The event types in order."""
        return [event.type for event in self.events]

    @property
    def done_items(self) -> list[ThreadItem]:
        """Every item of a `thread.item.done` event, in order."""
        return [event.item for event in self.events if isinstance(event, ThreadItemDoneEvent)]

    @property
    def assistant_messages(self) -> list[AssistantMessageItem]:
        """The finished assistant messages."""
        return [item for item in self.done_items if isinstance(item, AssistantMessageItem)]

    @property
    def assistant_text(self) -> str:
        """The text of the finished assistant messages, joined by blank lines."""
        return "\n\n".join(
            "".join(part.text for part in item.content) for item in self.assistant_messages
        )

    @property
    def errors(self) -> list[ErrorEvent]:
        """The `error` events."""
        return [event for event in self.events if isinstance(event, ErrorEvent)]


class ChatKitTestClient:
    """Drive a ChatKit endpoint: an ASGI app in process, or a base URL over real HTTP.

    `path` is where the endpoint is mounted (`"/chatkit"`); `headers` go on every request
    (authentication). Streaming requests return a `StreamedTurn`; the rest return upstream's
    models. An HTTP error status raises `ChatKitHTTPError`. Needs httpx.
    """

    def __init__(
        self,
        app_or_url: Any,
        *,
        path: str = "/chatkit",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        direct_upload_url: str | None = None,
    ) -> None:
        from .._optional import require

        httpx = require("httpx", "testing", "ChatKitTestClient")
        self.path = "/" + path.strip("/") if path.strip("/") else ""
        if isinstance(app_or_url, str):
            base_url = app_or_url.rstrip("/")
            transport = None
        else:
            base_url = "http://chatkit-test-client"
            transport = httpx.ASGITransport(app=app_or_url)
        self.base_url = base_url
        self.http: Any = httpx.AsyncClient(
            base_url=base_url, transport=transport, headers=dict(headers or {}), timeout=timeout
        )
        self._outside: Any = httpx.AsyncClient(timeout=timeout)
        """For absolute URLs elsewhere (presigned S3 uploads and downloads)."""
        self.direct_upload_url = direct_upload_url or f"{self.path}/attachments/upload"

    async def __aenter__(self) -> ChatKitTestClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        await self.http.aclose()
        await self._outside.aclose()

    # Generic

    async def post(self, request: ChatKitRequest | Mapping[str, Any]) -> Any:
        """POST one request (a model or raw JSON); the httpx response, not checked."""
        if isinstance(request, BaseModel):
            body = request.model_dump_json()
        else:
            body = json.dumps(request)
        return await self.http.post(
            self.path or "/", content=body, headers={"Content-Type": "application/json"}
        )

    async def stream(self, request: StreamingReq) -> StreamedTurn:
        """Send a streaming request; its events, parsed."""
        response = await self.post(request)
        self._check(response, request.type)
        return StreamedTurn(parse_sse(response.content))

    async def call(self, request: ChatKitRequest, response_type: type[_M]) -> _M:
        """Send a non-streaming request; its JSON reply parsed as `response_type`."""
        response = await self.post(request)
        self._check(response, request.type)
        return response_type.model_validate_json(response.content)

    async def call_empty(self, request: ChatKitRequest) -> None:
        """Send a non-streaming request whose reply is `{}`."""
        response = await self.post(request)
        self._check(response, request.type)

    def _check(self, response: Any, request_type: str) -> None:
        if response.status_code >= 400:
            try:
                body: Any = response.json()
            except ValueError:
                body = response.text
            raise ChatKitHTTPError(response.status_code, body, request_type)

    # Streaming requests

    async def create_thread(
        self, text: str = "", **message: Unpack[build.MessageOptions]
    ) -> StreamedTurn:
        """`threads.create` with a user message (`attachments`, `tags`, `quoted_text`, `model`,
        `tool_choice` as for `requests.user_input`)."""
        return await self.stream(build.create_thread(text, **message))

    async def add_user_message(
        self, thread_id: str, text: str = "", **message: Unpack[build.MessageOptions]
    ) -> StreamedTurn:
        """`threads.add_user_message` (the message options as for `create_thread`)."""
        return await self.stream(build.add_user_message(thread_id, text, **message))

    async def add_client_tool_output(self, thread_id: str, result: Any) -> StreamedTurn:
        """`threads.add_client_tool_output`: the result of the pending client tool call."""
        return await self.stream(build.add_client_tool_output(thread_id, result))

    async def add_structured_input(
        self,
        thread_id: str,
        item_id: str,
        answers: Mapping[str, Sequence[str] | None],
        *,
        status: Literal["answered", "skipped"] = "answered",
    ) -> StreamedTurn:
        """`threads.add_structured_input` (an answer of None skips that question)."""
        return await self.stream(
            build.add_structured_input(thread_id, item_id, answers, status=status)
        )

    async def retry_after_item(self, thread_id: str, item_id: str) -> StreamedTurn:
        """`threads.retry_after_item`."""
        return await self.stream(build.retry_after_item(thread_id, item_id))

    async def custom_action(
        self, thread_id: str, action_type: str, payload: Any = None, *, item_id: str | None = None
    ) -> StreamedTurn:
        """`threads.custom_action` (a widget action)."""
        return await self.stream(
            build.custom_action(thread_id, action_type, payload, item_id=item_id)
        )

    # Non-streaming requests

    async def sync_custom_action(
        self, thread_id: str, action_type: str, payload: Any = None, *, item_id: str | None = None
    ) -> SyncCustomActionResponse:
        """`threads.sync_custom_action`."""
        return await self.call(
            build.sync_custom_action(thread_id, action_type, payload, item_id=item_id),
            SyncCustomActionResponse,
        )

    async def get_thread(self, thread_id: str) -> Thread:
        """`threads.get_by_id`."""
        return await self.call(build.get_thread(thread_id), Thread)

    async def list_threads(
        self, *, limit: int | None = None, after: str | None = None, order: Order = "desc"
    ) -> Page[ThreadMetadata]:
        """`threads.list`."""
        return await self.call(
            build.list_threads(limit=limit, after=after, order=order), Page[ThreadMetadata]
        )

    async def list_items(
        self,
        thread_id: str,
        *,
        limit: int | None = None,
        after: str | None = None,
        order: Order = "desc",
    ) -> Page[ThreadItem]:
        """`items.list`."""
        return await self.call(
            build.list_items(thread_id, limit=limit, after=after, order=order), Page[ThreadItem]
        )

    async def all_items(self, thread_id: str, *, page_size: int = 100) -> list[ThreadItem]:
        """Every visible item of a thread, oldest first (follows `items.list` pages)."""
        items: list[ThreadItem] = []
        after: str | None = None
        while True:
            page = await self.list_items(thread_id, limit=page_size, after=after, order="asc")
            items.extend(page.data)
            if not page.has_more:
                return items
            if page.after is None:
                raise AssertionError("items.list returned has_more without an `after` cursor")
            after = page.after

    async def update_thread(self, thread_id: str, title: str) -> Thread:
        """`threads.update`."""
        return await self.call(build.update_thread(thread_id, title), Thread)

    async def delete_thread(self, thread_id: str) -> None:
        """`threads.delete`."""
        await self.call_empty(build.delete_thread(thread_id))

    async def feedback(self, thread_id: str, item_ids: Sequence[str], kind: FeedbackKind) -> None:
        """`items.feedback`."""
        await self.call_empty(build.feedback(thread_id, item_ids, kind))

    async def create_attachment(self, name: str, size: int, mime_type: str) -> Attachment:
        """`attachments.create` (phase one of a two-phase upload)."""
        return await self._attachment(build.create_attachment(name, size, mime_type))

    async def delete_attachment(self, attachment_id: str) -> None:
        """`attachments.delete`."""
        await self.call_empty(build.delete_attachment(attachment_id))

    async def transcribe(self, audio: bytes, mime_type: str) -> TranscriptionResult:
        """`input.transcribe`."""
        encoded = base64.b64encode(audio).decode()
        return await self.call(build.transcribe(encoded, mime_type), TranscriptionResult)

    # Uploads

    async def upload(
        self,
        name: str,
        data: bytes,
        mime_type: str,
        *,
        strategy: Literal["two_phase", "direct"] = "two_phase",
    ) -> Attachment:
        """Upload a file as ChatKit.js does with `strategy`; the attachment to send.

        Two-phase: `attachments.create`, then the bytes with the method, URL and headers of
        its `upload_descriptor`. Direct: a multipart POST (`file` field) to
        `direct_upload_url` (default `<path>/attachments/upload`).
        """
        if strategy == "direct":
            response = await self.http.post(
                self.direct_upload_url, files={"file": (name, data, mime_type)}
            )
            self._check(response, "direct upload")
            return await self._parse_attachment(response.content)
        attachment = await self.create_attachment(name, len(data), mime_type)
        descriptor = attachment.upload_descriptor
        if descriptor is None:
            raise AssertionError(
                f"attachments.create returned no upload_descriptor for {name!r}: the backend "
                "does not do two-phase uploads (use strategy='direct')"
            )
        url = str(descriptor.url)
        client = self._client_for(url)
        response = await client.request(
            descriptor.method, url, content=data, headers=descriptor.headers
        )
        self._check(response, "two-phase upload")
        return attachment

    async def download(self, url: str) -> bytes:
        """GET a preview or download URL (ours, with the client's headers, or presigned)."""
        client = self._client_for(url)
        response = await client.get(url)
        self._check(response, "download")
        return bytes(response.content)

    def _client_for(self, url: str) -> Any:
        """Our client (with its headers) for the app's URLs; a bare one for others (S3)."""
        if url.startswith("/") or url.startswith(self.base_url + "/"):
            return self.http
        return self._outside

    async def _attachment(self, request: ChatKitRequest) -> Attachment:
        response = await self.post(request)
        self._check(response, request.type)
        return await self._parse_attachment(response.content)

    async def _parse_attachment(self, content: bytes) -> Attachment:
        return TypeAdapter(Attachment).validate_json(content)
