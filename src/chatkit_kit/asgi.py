"""A ready ChatKit HTTP endpoint for Starlette and FastAPI.

`chatkit_routes` / `chatkit_app` serve `POST /chatkit` around `ChatKitServer.process` with the
behaviour the hand-written handler gets wrong (docs/asgi.md, chatkit-contract.md sections 1.3
and 5): malformed bodies are 400s, oversized bodies 413s, `NotFoundError` a 404 even for streaming
requests (the first event is awaited before the 200 is committed), failures after the stream
started end it with a ChatKit error event, and a client disconnect cancels the work so upstream's
`handle_stream_cancelled` persists what was already streamed.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Protocol

from chatkit.errors import ErrorCode
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import ChatKitReq, ErrorEvent
from pydantic import TypeAdapter, ValidationError

from ._http import ClientRequestError, ContextFactory
from ._optional import require

require("starlette", "server")

from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.cors import CORSMiddleware  # noqa: E402
from starlette.requests import ClientDisconnect, Request  # noqa: E402
from starlette.routing import BaseRoute, Mount, Route  # noqa: E402
from starlette.types import Message, Receive, Scope, Send  # noqa: E402

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "CORSConfig",
    "ChatKitEndpoint",
    "UploadRoutesProvider",
    "chatkit_app",
    "chatkit_routes",
]

DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
"""Default request body limit in bytes (4 MiB); the largest ChatKit request is `input.transcribe`
with base64 audio. File uploads go through the upload routes, not through this limit."""

logger = logging.getLogger(__name__)

_REQUEST_ADAPTER: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)

_SSE_HEADERS = (
    (b"content-type", b"text/event-stream"),
    # no-transform: proxies must not compress or rewrite the stream (compression buffers events).
    (b"cache-control", b"no-cache, no-transform"),
    # nginx (and proxies copying its convention) must not buffer the response.
    (b"x-accel-buffering", b"no"),
)

_STREAM_ERROR_CHUNK = (
    b"data: "
    + ErrorEvent(code=ErrorCode.STREAM_ERROR, allow_retry=True)
    .model_dump_json(by_alias=True, exclude_none=True)
    .encode()
    + b"\n\n"
)

_UPSTREAM_STREAM_ERROR = "Error while generating streamed response"


class UploadRoutesProvider(Protocol):
    """An attachment backend that serves its own upload and download routes.

    `chatkit_routes(..., uploads=provider)` mounts `provider.routes(context_factory)` under the
    ChatKit path, e.g. `/chatkit/...`.
    """

    def routes(self, context_factory: ContextFactory) -> Sequence[BaseRoute]:
        """Starlette routes, relative to the ChatKit path, authenticated by `context_factory`."""
        ...


@dataclass(frozen=True)
class CORSConfig:
    """Cross-origin settings for a ChatKit web component served from another origin.

    `allow_origins` lists the origins of the pages that embed the component, e.g.
    `("https://app.example.com",)`. The component sends headers of its own besides the ones a
    custom `fetch` adds, so every request header is allowed by default. Set `allow_credentials`
    only when the context factory authenticates with cookies.
    """

    allow_origins: Sequence[str] = ()
    allow_origin_regex: str | None = None
    allow_credentials: bool = False
    allow_methods: Sequence[str] = ("GET", "POST", "PUT", "DELETE")
    allow_headers: Sequence[str] = ("*",)
    expose_headers: Sequence[str] = ()
    max_age: int = 600

    def middleware(self) -> Middleware:
        """This configuration as Starlette `CORSMiddleware`."""
        if isinstance(self.allow_origins, str):
            raise TypeError(
                f"CORSConfig.allow_origins must be a list of origins, not the string "
                f"{self.allow_origins!r}; write [{self.allow_origins!r}]"
            )
        if not self.allow_origins and self.allow_origin_regex is None:
            raise ValueError(
                "CORSConfig needs allow_origins (e.g. ('https://app.example.com',)) "
                "or allow_origin_regex"
            )
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError(
                "CORSConfig: allow_origins=['*'] with allow_credentials=True would let every "
                "website send requests with your users' cookies; list the allowed origins"
            )
        return Middleware(
            CORSMiddleware,
            allow_origins=list(self.allow_origins),
            allow_origin_regex=self.allow_origin_regex,
            allow_credentials=self.allow_credentials,
            allow_methods=list(self.allow_methods),
            allow_headers=list(self.allow_headers),
            expose_headers=list(self.expose_headers),
            max_age=self.max_age,
        )


@dataclass
class _RequestInfo:
    op: str
    thread_id: str | None


_current_request: contextvars.ContextVar[_RequestInfo | None] = contextvars.ContextVar(
    "chatkit_kit_asgi_request", default=None
)


class _UpstreamLogFilter(logging.Filter):
    """Tags records of the `chatkit` logger made while this endpoint serves a request.

    Every record gets `chatkit_op` and `chatkit_thread_id` attributes, and error records name
    both in their message. Upstream's generic "Error while generating streamed response" record
    is dropped: the endpoint logs that failure itself, once, with the operation and thread id.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        info = _current_request.get()
        if info is None:
            return True
        if record.msg == _UPSTREAM_STREAM_ERROR:
            return False
        setattr(record, "chatkit_op", info.op)  # noqa: B010
        setattr(record, "chatkit_thread_id", info.thread_id)  # noqa: B010
        if record.levelno >= logging.ERROR:
            record.msg = f"{record.getMessage()} (op={info.op}, thread_id={info.thread_id})"
            record.args = ()
        return True


logging.getLogger("chatkit").addFilter(_UpstreamLogFilter())


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def _send_json_error(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    close: bool = False,
) -> None:
    body = _error_body(code, message)
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    for name, value in (headers or {}).items():
        raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    if close and scope.get("http_version") in ("1.0", "1.1"):
        # The rest of the request body is not read; do not keep the connection for reuse.
        raw_headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """A (code, message) pair naming what is wrong with a request body."""
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        return "invalid_json", f"request body is not valid JSON: {errors[0]['msg']}"
    parts = []
    for error in errors[:5]:
        loc = ".".join(str(part) for part in error["loc"])
        parts.append(f"{loc}: {error['msg']}" if loc else str(error["msg"]))
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more errors")
    return "invalid_request", "not a valid ChatKit request: " + "; ".join(parts)


def _thread_id_from_event(chunk: bytes) -> str | None:
    """The thread id of a `thread.created` SSE frame, if it is one."""
    try:
        event = json.loads(chunk.removeprefix(b"data: "))
        thread_id = event["thread"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
    return thread_id if isinstance(thread_id, str) else None


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class ChatKitEndpoint:
    """The ASGI app behind `POST /chatkit`; `chatkit_routes` mounts it."""

    def __init__(
        self,
        server: ChatKitServer[Any],
        context_factory: ContextFactory,
        *,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        if max_body_size is not None and max_body_size < 1:
            raise ValueError(f"max_body_size must be at least 1 byte or None, got {max_body_size}")
        self.server = server
        self.context_factory = context_factory
        self.max_body_size = max_body_size
        # Streams run in their own tasks; keep them referenced until they finish.
        self._streams: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - Route only passes HTTP scopes
            raise RuntimeError(f"ChatKitEndpoint serves HTTP only, got {scope['type']!r}")
        if scope["method"] != "POST":
            await _send_json_error(
                scope,
                send,
                405,
                "method_not_allowed",
                f"{scope['method']} is not allowed; ChatKit requests are POSTed",
                headers={"Allow": "POST"},
            )
            return

        request = Request(scope, receive)
        limit = self.max_body_size
        content_length = request.headers.get("content-length")
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                await _send_json_error(
                    scope,
                    send,
                    400,
                    "invalid_request",
                    f"invalid Content-Length header {content_length!r}",
                    close=True,
                )
                return
            if limit is not None and declared > limit:
                await _too_large(scope, send, limit, close=True)
                return

        try:
            context = await self.context_factory(request)
        except HTTPException as exc:
            code = _status_code_name(exc.status_code)
            await _send_json_error(
                scope, send, exc.status_code, code, str(exc.detail), headers=exc.headers
            )
            return
        except Exception:
            logger.exception("ChatKit context factory failed")
            await _send_json_error(scope, send, 500, "internal_error", "internal server error")
            return

        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if limit is not None and size > limit:
                    await _too_large(scope, send, limit, close=True)
                    return
                chunks.append(chunk)
        except ClientDisconnect:
            return
        body = b"".join(chunks)

        try:
            parsed = _REQUEST_ADAPTER.validate_json(body)
        except ValidationError as exc:
            code, message = _describe_validation_error(exc)
            await _send_json_error(scope, send, 400, code, message)
            return

        info = _RequestInfo(op=parsed.type, thread_id=getattr(parsed.params, "thread_id", None))
        token = _current_request.set(info)
        try:
            try:
                result = await self.server.process(body, context)
            except NotFoundError as exc:
                await _send_json_error(scope, send, 404, "not_found", str(exc))
                return
            except ClientRequestError as exc:
                await _send_json_error(scope, send, exc.status_code, exc.code, str(exc))
                return
            except Exception:
                logger.exception(
                    "ChatKit request failed (op=%s, thread_id=%s)", info.op, info.thread_id
                )
                await _send_json_error(scope, send, 500, "internal_error", "internal server error")
                return
            if isinstance(result, StreamingResult):
                await self._stream(scope, receive, send, result, info)
            else:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(result.json)).encode()),
                            (b"cache-control", b"no-store"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": result.json})
        finally:
            _current_request.reset(token)

    async def _stream(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        result: StreamingResult,
        info: _RequestInfo,
    ) -> None:
        """Run the stream in its own task while watching for the client going away.

        The stream task is cancelled once, with plain asyncio cancellation: upstream's
        cancellation handler can then await its store writes. (Starlette's StreamingResponse
        cancels through an anyio cancel scope, which cancels those awaits too, so the partial
        message is lost with any store that really waits.) A separate task also keeps that
        cleanup running when the request task itself is cancelled.
        """
        sse = _EventStream(scope, send, result, info)
        pump = asyncio.ensure_future(sse.run())
        self._streams.add(pump)
        pump.add_done_callback(self._streams.discard)
        watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait((pump, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not pump.done():
                sse.cancel(pump)
                await asyncio.wait((pump,))
        if not pump.cancelled():
            pump.result()  # re-raises a bug in _EventStream itself; stream failures end there


class _EventStream:
    """Sends one `StreamingResult` as server-sent events; cancels it at most once."""

    def __init__(
        self, scope: Scope, send: Send, result: StreamingResult, info: _RequestInfo
    ) -> None:
        self.scope = scope
        self.send = send
        self.stream = aiter(result)
        self.info = info
        self.cancelling = False

    def cancel(self, task: asyncio.Task[None]) -> None:
        """Cancel the task running `run()`, unless a cancellation is already under way.

        A second cancellation would interrupt upstream's `handle_stream_cancelled` mid-write.
        """
        if not self.cancelling:
            self.cancelling = True
            task.cancel()

    async def cancel_inside(self) -> None:
        """Resume the stream parked at `yield` and cancel it at its next await.

        Cancelling a task whose generator sits at `yield` never reaches the generator (closing
        it raises GeneratorExit instead), so upstream's `except CancelledError` in
        `_process_events`, which stores the partially streamed assistant message, would not run.
        """
        task = asyncio.current_task()
        assert task is not None
        self.cancelling = False  # the cancellation that got us here was spent outside the stream
        self.cancel(task)
        try:
            while True:
                await self.stream.__anext__()
        except (asyncio.CancelledError, StopAsyncIteration):
            pass
        except Exception:
            logger.debug("ChatKit stream failed while being cancelled", exc_info=True)

    async def run(self) -> None:
        send, info = self.send, self.info
        # Commit to a 200 only once the first event exists, so that a missing thread (or any
        # failure before the first event) still gets a proper status code.
        try:
            first: bytes | None = await self.stream.__anext__()
        except StopAsyncIteration:
            first = None
        except NotFoundError as exc:
            await _send_json_error(self.scope, send, 404, "not_found", str(exc))
            return
        except ClientRequestError as exc:
            await _send_json_error(self.scope, send, exc.status_code, exc.code, str(exc))
            return
        except Exception:
            logger.exception(
                "ChatKit stream failed before its first event (op=%s, thread_id=%s)",
                info.op,
                info.thread_id,
            )
            await _send_json_error(self.scope, send, 500, "internal_error", "internal server error")
            return

        message: Message = {
            "type": "http.response.start",
            "status": 200,
            "headers": list(_SSE_HEADERS),
        }
        try:
            await send(message)
            if first is not None:
                if info.thread_id is None:
                    info.thread_id = _thread_id_from_event(first)
                await send({"type": "http.response.body", "body": first, "more_body": True})
        except asyncio.CancelledError:
            await self.cancel_inside()
            raise
        except OSError:  # ASGI 2.4 servers report a client that went away this way
            await self.cancel_inside()
            return
        if first is None:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return

        next_chunk = self.stream.__anext__
        while True:
            try:
                chunk = await next_chunk()
            except StopAsyncIteration:
                break
            except Exception:
                logger.exception(
                    "ChatKit stream failed after it started (op=%s, thread_id=%s)",
                    info.op,
                    info.thread_id,
                )
                try:
                    await send(
                        {
                            "type": "http.response.body",
                            "body": _STREAM_ERROR_CHUNK,
                            "more_body": True,
                        }
                    )
                except OSError:
                    return
                break
            try:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except asyncio.CancelledError:
                await self.cancel_inside()
                raise
            except OSError:
                await self.cancel_inside()
                return
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            return


async def _too_large(scope: Scope, send: Send, limit: int, *, close: bool) -> None:
    await _send_json_error(
        scope,
        send,
        413,
        "request_too_large",
        f"request body exceeds the limit of {limit} bytes (max_body_size)",
        close=close,
    )


def _status_code_name(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


def chatkit_routes(
    server: ChatKitServer[Any],
    context_factory: ContextFactory,
    *,
    path: str = "/chatkit",
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    uploads: UploadRoutesProvider | None = None,
) -> list[BaseRoute]:
    """Starlette routes serving `POST {path}`, plus the upload routes under `{path}/`.

    Add them to a Starlette app (`Starlette(routes=...)`) or a FastAPI app
    (`app.router.routes.extend(...)`).
    """
    if not path.startswith("/") or (path != "/" and path.endswith("/")):
        raise ValueError(f"path must start with '/' and not end with '/', got {path!r}")
    endpoint = ChatKitEndpoint(server, context_factory, max_body_size=max_body_size)
    routes: list[BaseRoute] = [Route(path, endpoint, name="chatkit")]
    if uploads is not None:
        routes.append(
            Mount(path.rstrip("/"), routes=list(uploads.routes(context_factory)), name="uploads")
        )
    return routes


def chatkit_app(
    server: ChatKitServer[Any],
    context_factory: ContextFactory,
    *,
    path: str = "/chatkit",
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    uploads: UploadRoutesProvider | None = None,
    cors: CORSConfig | None = None,
) -> Starlette:
    """A Starlette ASGI app serving `POST {path}` (and the upload routes), optionally with CORS."""
    middleware = [cors.middleware()] if cors is not None else []
    return Starlette(
        routes=chatkit_routes(
            server, context_factory, path=path, max_body_size=max_body_size, uploads=uploads
        ),
        middleware=middleware,
    )
