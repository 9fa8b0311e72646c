"""How the ChatKit endpoint and the upload routes answer a failure: one status per exception.

Every error response of `/chatkit` and of the upload and download routes has the body
`{"error": {"code": "...", "message": "..."}}` and `Cache-Control: no-store`; `reply_for` is the
one place that decides status, code, message, headers, log level and whether a stream error
event offers a retry. The table is in docs/asgi.md ("Errors").
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chatkit.store import NotFoundError

from ._http import ClientRequestError, code_for_status
from ._optional import require
from .errors import AttachmentStorageError, DatabaseError, MissingDependencyError

require("starlette", "server")

from starlette.exceptions import HTTPException  # noqa: E402
from starlette.responses import Response  # noqa: E402
from starlette.types import Scope, Send  # noqa: E402

RETRY_AFTER_SECONDS = 5
"""`Retry-After` of the 503 answered for a `DatabaseUnavailableError`, `DatabaseTimeoutError` or
`AttachmentStorageUnavailableError`."""

_UNAVAILABLE_MESSAGE = "the service is temporarily unavailable; retry in a few seconds"

# Upstream ChatKitServer methods whose own `raise ValueError(...)` rejects the request (a tool
# output with no pending tool call, structured input for an item that is not pending, a retry
# after an item that is not a user message, a sync action on an item that is not a widget).
_UPSTREAM_REQUEST_CHECKS = frozenset(
    {
        "_process_non_streaming",
        "_process_streaming_impl",
        "_process_sync_custom_action",
        "_apply_structured_input_submission",
    }
)


@dataclass(frozen=True)
class ErrorReply:
    """What an HTTP route answers for one failure."""

    status: int
    code: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)
    retryable: bool = False
    """Whether a stream error event for this failure offers a retry (`allow_retry`)."""
    log_level: int = logging.DEBUG
    """ERROR (with traceback) for server faults, WARNING for outages, DEBUG for client errors."""

    def body(self) -> bytes:
        """The JSON error body."""
        return error_body(self.code, self.message)

    def response(self) -> Response:
        """This reply as a Starlette response (for the upload and download routes)."""
        headers = {"Cache-Control": "no-store", **self.headers}
        return Response(
            self.body(), status_code=self.status, headers=headers, media_type="application/json"
        )


def error_body(code: str, message: str) -> bytes:
    """`{"error": {"code": code, "message": message}}` as bytes."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def client_error(status: int, message: str, code: str | None = None) -> ErrorReply:
    """A 4xx reply; `code` defaults to the generic code of `status`."""
    return ErrorReply(status, code or code_for_status(status), message)


INTERNAL_ERROR = ErrorReply(
    500, "internal_error", "internal server error", retryable=True, log_level=logging.ERROR
)
"""An unexpected server fault: logged with its traceback; a stream error event offers a retry,
as upstream's do."""

_NOT_RETRYABLE_INTERNAL_ERROR = replace(INTERNAL_ERROR, retryable=False)


def _innermost_frame(exc: BaseException) -> tuple[str, str] | None:
    """(module name, function name) of the frame that raised `exc`."""
    tb = exc.__traceback__
    if tb is None:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    return str(frame.f_globals.get("__name__")), frame.f_code.co_name


def reply_for(
    exc: BaseException, *, op: str | None = None, upload_url: str | None = None
) -> ErrorReply:
    """The reply to `exc`, raised while serving the ChatKit operation `op` (if known).

    `upload_url` is the direct-upload URL to name when a client asks for a two-phase upload
    (`attachments.create`) that the attachment store does not offer.
    """
    if isinstance(exc, HTTPException):
        return ErrorReply(
            exc.status_code,
            code_for_status(exc.status_code),
            str(exc.detail),
            headers=dict(exc.headers or {}),
            log_level=logging.DEBUG if exc.status_code < 500 else logging.WARNING,
        )
    if isinstance(exc, NotFoundError):
        return client_error(404, str(exc) or "not found")
    if isinstance(exc, ClientRequestError):
        return client_error(exc.status_code, str(exc), exc.code)
    if isinstance(exc, (DatabaseError, AttachmentStorageError)):
        # DatabaseUnavailableError, DatabaseTimeoutError, AttachmentStorageUnavailableError
        if exc.retryable:
            return ErrorReply(
                503,
                "service_unavailable",
                _UNAVAILABLE_MESSAGE,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                retryable=True,
                log_level=logging.WARNING,
            )
        # A configuration error (missing database, bad role, schema version) or a statement
        # the database refused: a server fault that no retry of the same request fixes.
        return _NOT_RETRYABLE_INTERNAL_ERROR
    if isinstance(exc, MissingDependencyError):
        return _NOT_RETRYABLE_INTERNAL_ERROR
    raised_in = _innermost_frame(exc)
    if isinstance(exc, NotImplementedError) and raised_in is not None:
        if op == "attachments.create" and raised_in[1] == "create_attachment":
            where = f" (uploadUrl: {upload_url!r})" if upload_url else ""
            return client_error(
                400,
                "this server takes direct uploads, not two-phase uploads (attachments.create): "
                f'configure the ChatKit client with uploadStrategy {{type: "direct"}}{where}',
                "upload_strategy_mismatch",
            )
        if raised_in[0] == "chatkit.server":
            return client_error(501, f"this server does not support {op or 'this request'}")
    if isinstance(exc, binascii.Error) and op == "input.transcribe":
        return client_error(
            400, f"params.audio_base64 is not valid base64: {exc}", "invalid_request"
        )
    if (
        isinstance(exc, ValueError)
        and raised_in is not None
        and raised_in[0] == "chatkit.server"
        and raised_in[1] in _UPSTREAM_REQUEST_CHECKS
    ):
        return client_error(400, str(exc), "invalid_request")
    return INTERNAL_ERROR


def log_failure(
    logger: logging.Logger, reply: ErrorReply, exc: BaseException, msg: str, *args: Any
) -> None:
    """Log `exc` as `reply` says: a traceback only for server faults, one line otherwise."""
    if reply.log_level >= logging.ERROR:
        logger.error(msg, *args, exc_info=exc)
    else:
        logger.log(reply.log_level, msg + ": %s: %s", *args, type(exc).__name__, exc)


async def send_error(scope: Scope, send: Send, reply: ErrorReply, *, close: bool = False) -> None:
    """Send `reply` as a complete ASGI response.

    `close` adds `Connection: close` over HTTP/1: the rest of the request body is not read, so
    the connection must not be reused.
    """
    body = reply.body()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    for name, value in reply.headers.items():
        raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    if close and scope.get("http_version") in ("1.0", "1.1"):
        raw_headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": reply.status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
