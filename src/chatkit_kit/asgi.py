"""A ready ChatKit HTTP endpoint for Starlette and FastAPI.

`chatkit_routes` / `chatkit_app` serve `POST /chatkit` the way `ChatKitServer.process` does, parsing
each request once (`_dispatch`: upstream's `process` parses it again with a new adapter), with the
behaviour the hand-written handler gets wrong (docs/asgi.md): malformed bodies and requests
upstream rejects are 400s, oversized bodies 413s, `NotFoundError` a 404 even for streaming
requests (the first event is awaited before the 200 is committed), failures after the stream
started end it with a ChatKit error event, silent streams send keepalive comments, and a client
disconnect cancels the work so upstream's `handle_stream_cancelled` persists what was already
streamed. Status codes are decided in `_http_errors`, the stream itself runs in `_sse`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from chatkit.server import ChatKitServer, StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import ChatKitReq, ThreadsRetryAfterItemReq
from pydantic import ValidationError

from ._dispatch import REQUEST_ADAPTER, process_parsed
from ._http import ClientRequestError, ContextFactory
from ._http_errors import ErrorReply, client_error, log_failure, reply_for, send_error
from ._nodelay import ensure_nodelay
from ._optional import require
from ._sse import EventStream, RequestInfo, wait_for_disconnect

require("starlette", "server")

from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.cors import CORSMiddleware  # noqa: E402
from starlette.requests import ClientDisconnect, Request  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.routing import BaseRoute, Mount, Route  # noqa: E402
from starlette.types import Receive, Scope, Send  # noqa: E402

__all__ = [
    "DEFAULT_KEEPALIVE",
    "DEFAULT_MAX_BODY_SIZE",
    "CORSConfig",
    "ChatKitEndpoint",
    "ClientRequestError",
    "UploadRoutesProvider",
    "chatkit_app",
    "chatkit_routes",
]

DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024
"""Default request body limit in bytes (4 MiB); the largest ChatKit request is `input.transcribe`
with base64 audio. File uploads go through the upload routes, not through this limit."""

DEFAULT_KEEPALIVE = 15.0
"""Seconds of silence after which a started stream sends an SSE comment line (`: keepalive`),
so that proxies and load balancers with idle timeouts keep the connection."""

logger = logging.getLogger(__name__)

_UPSTREAM_STREAM_ERROR = "Error while generating streamed response"

_ATTACHMENT_OPS = frozenset({"attachments.create", "attachments.delete"})


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


_current_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "chatkit_kit_asgi_request", default=None
)


class _UpstreamLogFilter(logging.Filter):
    """Tags records of the `chatkit` logger made while this endpoint serves a request.

    Every record gets `chatkit_op` and `chatkit_thread_id` attributes, and error records name
    both in their message. Upstream's generic "Error while generating streamed response" record
    is dropped: the endpoint logs that failure itself, once, with the operation and thread id
    (and without a traceback when the client caused it). The exception upstream logs after
    turning a failure in `respond()` into an error event is kept on the request, so that the
    stream can tell whether that event may offer a retry.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        info = _current_request.get()
        if info is None:
            return True
        if record.msg == _UPSTREAM_STREAM_ERROR:
            return False
        if record.funcName == "_process_events" and record.exc_info:
            info.upstream_error = record.exc_info[1]
        setattr(record, "chatkit_op", info.op)  # noqa: B010
        setattr(record, "chatkit_thread_id", info.thread_id)  # noqa: B010
        if record.levelno >= logging.ERROR:
            record.msg = f"{record.getMessage()} (op={info.op}, thread_id={info.thread_id})"
            record.args = ()
        return True


logging.getLogger("chatkit").addFilter(_UpstreamLogFilter())


def _describe_validation_error(exc: ValidationError) -> ErrorReply:
    """A 400 naming what is wrong with a request body."""
    errors = exc.errors(include_url=False, include_input=False)
    if errors and errors[0]["type"] == "json_invalid":
        return client_error(
            400, f"request body is not valid JSON: {errors[0]['msg']}", "invalid_json"
        )
    parts = []
    for error in errors[:5]:
        loc = ".".join(str(part) for part in error["loc"])
        parts.append(f"{loc}: {error['msg']}" if loc else str(error["msg"]))
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more errors")
    return client_error(400, "not a valid ChatKit request: " + "; ".join(parts), "invalid_request")


def _check_request(server: ChatKitServer[Any], request: ChatKitReq) -> ErrorReply | None:
    """A 400 for a request upstream would only fail on deep inside (as a 500), else None."""
    # Upstream reads a limit of 0 (or none) as its default page size; a negative one would
    # reach the store and fail there.
    limit = getattr(request.params, "limit", None)
    if isinstance(limit, int) and limit < 0:
        return client_error(
            400,
            f"params.limit must not be negative, got {limit}; "
            "leave it out (or send 0) for the default page size",
            "invalid_request",
        )
    if request.type in _ATTACHMENT_OPS and server.attachment_store is None:
        return client_error(
            400,
            f"this server does not accept attachments ({request.type}); "
            "turn attachments off in the ChatKit client's composer options",
            "attachments_not_supported",
        )
    return None


async def _check_retry_target(
    server: ChatKitServer[Any], request: ChatKitReq, context: Any
) -> ErrorReply | None:
    """A 404 for `threads.retry_after_item` naming an item the thread does not have.

    Upstream finds no such item while walking the thread backwards and then streams nothing:
    a 200 with an empty stream, which the client cannot tell from a retry that worked. (An item
    that is not a user message upstream refuses itself, with a 400.)
    """
    if not isinstance(request, ThreadsRetryAfterItemReq):
        return None
    params = request.params
    try:
        await server.store.load_item(params.thread_id, params.item_id, context)
    except NotFoundError:
        return client_error(
            404,
            f"thread {params.thread_id} has no item {params.item_id} to retry after",
        )
    return None


def _upload_url(server: ChatKitServer[Any]) -> str | None:
    """The direct-upload URL of the server's attachment store, if it has one."""
    url = getattr(server.attachment_store, "upload_url", None)
    return url if isinstance(url, str) else None


class ChatKitEndpoint:
    """The ASGI app behind `POST /chatkit`; `chatkit_routes` mounts it."""

    def __init__(
        self,
        server: ChatKitServer[Any],
        context_factory: ContextFactory,
        *,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        keepalive: float | None = DEFAULT_KEEPALIVE,
    ) -> None:
        if max_body_size is not None and max_body_size < 1:
            raise ValueError(f"max_body_size must be at least 1 byte or None, got {max_body_size}")
        if keepalive is not None and (
            isinstance(keepalive, bool) or not isinstance(keepalive, (int, float))
        ):
            raise TypeError(f"keepalive must be a number of seconds or None, got {keepalive!r}")
        if keepalive is not None and not (keepalive == 0 or 0.01 <= keepalive <= 3600):
            raise ValueError(
                f"keepalive must be 0 (off) or 0.01 to 3600 seconds, got {keepalive!r}"
            )
        self.server = server
        self.context_factory = context_factory
        self.max_body_size = max_body_size
        self.keepalive = keepalive or None
        # Streams run in their own tasks; keep them referenced until they finish.
        self._streams: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - Route only passes HTTP scopes
            raise RuntimeError(f"ChatKitEndpoint serves HTTP only, got {scope['type']!r}")
        ensure_nodelay(scope)  # once per port and process: no response waits on Nagle
        if scope["method"] != "POST":
            reply = client_error(
                405, f"{scope['method']} is not allowed; ChatKit requests are POSTed"
            )
            await send_error(scope, send, replace(reply, headers={"Allow": "POST"}))
            return

        request = Request(scope, receive)
        limit = self.max_body_size
        content_length = request.headers.get("content-length")
        if content_length is not None:
            try:
                declared = int(content_length)
            except ValueError:
                reply = client_error(
                    400, f"invalid Content-Length header {content_length!r}", "invalid_request"
                )
                await send_error(scope, send, reply, close=True)
                return
            if limit is not None and declared > limit:
                await send_error(scope, send, _too_large(limit), close=True)
                return

        try:
            context = await self.context_factory(request)
        except Exception as exc:
            reply = reply_for(exc)
            log_failure(logger, reply, exc, "ChatKit context factory failed")
            await send_error(scope, send, reply)
            return

        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if limit is not None and size > limit:
                    await send_error(scope, send, _too_large(limit), close=True)
                    return
                chunks.append(chunk)
        except ClientDisconnect:
            return
        body = b"".join(chunks)

        try:
            parsed = REQUEST_ADAPTER.validate_json(body)
        except ValidationError as exc:
            await send_error(scope, send, _describe_validation_error(exc))
            return
        invalid = _check_request(self.server, parsed)
        if invalid is not None:
            await send_error(scope, send, invalid)
            return

        info = RequestInfo(
            op=parsed.type,
            thread_id=getattr(parsed.params, "thread_id", None),
            upload_url=_upload_url(self.server) if parsed.type == "attachments.create" else None,
        )
        token = _current_request.set(info)
        try:
            try:
                unknown = await _check_retry_target(self.server, parsed, context)
                if unknown is not None:
                    await send_error(scope, send, unknown)
                    return
                result = await process_parsed(self.server, parsed, body, context)
            except Exception as exc:
                reply = reply_for(exc, op=info.op, upload_url=info.upload_url)
                log_failure(
                    logger,
                    reply,
                    exc,
                    "ChatKit request failed (op=%s, thread_id=%s)",
                    info.op,
                    info.thread_id,
                )
                await send_error(scope, send, reply)
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
        info: RequestInfo,
    ) -> None:
        """Run the stream in its own task while watching for the client going away.

        The stream task is cancelled once, with plain asyncio cancellation: upstream's
        cancellation handler can then await its store writes. (Starlette's StreamingResponse
        cancels through an anyio cancel scope, which cancels those awaits too, so the partial
        message is lost with any store that really waits.) A separate task also keeps that
        cleanup running when the request task itself is cancelled.
        """
        sse = EventStream(scope, send, result, info, keepalive=self.keepalive)
        pump = asyncio.ensure_future(sse.run())
        self._streams.add(pump)
        pump.add_done_callback(self._streams.discard)
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            await asyncio.wait((pump, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not pump.done():
                sse.cancel(pump)
                await asyncio.wait((pump,))
        if not pump.cancelled():
            pump.result()  # re-raises a bug in EventStream itself; stream failures end there


def _too_large(limit: int) -> ErrorReply:
    return client_error(
        413, f"request body exceeds the limit of {limit} bytes (max_body_size)", "request_too_large"
    )


async def _http_exception(request: Request, exc: Exception) -> Response:
    return reply_for(exc).response()


class _NotFound:
    """JSON 404 for paths under the ChatKit path that no upload route serves (any method)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_error(scope, send, client_error(404, f"no route for {scope['path']}"))


def chatkit_routes(
    server: ChatKitServer[Any],
    context_factory: ContextFactory,
    *,
    path: str = "/chatkit",
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    keepalive: float | None = DEFAULT_KEEPALIVE,
    uploads: UploadRoutesProvider | None = None,
) -> list[BaseRoute]:
    """Starlette routes serving `POST {path}`, plus the upload routes under `{path}/`.

    Add them to a Starlette app (`Starlette(routes=...)`) or a FastAPI app
    (`app.router.routes.extend(...)`).
    """
    if not path.startswith("/") or (path != "/" and path.endswith("/")):
        raise ValueError(f"path must start with '/' and not end with '/', got {path!r}")
    endpoint = ChatKitEndpoint(
        server, context_factory, max_body_size=max_body_size, keepalive=keepalive
    )
    routes: list[BaseRoute] = [Route(path, endpoint, name="chatkit")]
    if uploads is not None:
        # The last route answers unknown paths under `path` with a JSON 404.
        upload_routes = [*uploads.routes(context_factory), Route("/{rest:path}", _NotFound())]
        routes.append(Mount(path.rstrip("/"), routes=upload_routes, name="uploads"))
    return routes


def chatkit_app(
    server: ChatKitServer[Any],
    context_factory: ContextFactory,
    *,
    path: str = "/chatkit",
    max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
    keepalive: float | None = DEFAULT_KEEPALIVE,
    uploads: UploadRoutesProvider | None = None,
    cors: CORSConfig | None = None,
) -> Starlette:
    """A Starlette ASGI app serving `POST {path}` (and the upload routes), optionally with CORS.

    Every `HTTPException` in the app (an upload provider's own routes, unknown paths) is answered
    with the endpoint's JSON error shape.
    """
    middleware = [cors.middleware()] if cors is not None else []
    return Starlette(
        exception_handlers={HTTPException: _http_exception},
        routes=chatkit_routes(
            server,
            context_factory,
            path=path,
            max_body_size=max_body_size,
            keepalive=keepalive,
            uploads=uploads,
        ),
        middleware=middleware,
    )
