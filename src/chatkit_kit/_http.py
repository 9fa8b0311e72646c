"""Types shared by chatkit-kit's HTTP pieces (the ChatKit endpoint and the upload routes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import ChatKitKitError

if TYPE_CHECKING:  # pragma: no cover
    from starlette.requests import Request

ContextFactory = Callable[["Request"], Awaitable[Any]]
"""Builds the app's ChatKit context from an HTTP request.

It may reject the request by raising `starlette.exceptions.HTTPException` (401 or 403).
"""

STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_content",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    503: "service_unavailable",
}
"""The error code of each status when nothing more specific applies (docs/asgi.md)."""


def code_for_status(status: int) -> str:
    """The generic error code of `status`: from `STATUS_CODES`, else client_error/server_error."""
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    return "server_error" if status >= 500 else "client_error"


class ClientRequestError(ChatKitKitError):
    """An error caused by the client's request; HTTP endpoints answer with `status_code`.

    `chatkit_kit.asgi` and the upload routes answer it with `status_code` and
    `{"error": {"code": code, "message": str(exc)}}`; in a stream that has already started it
    ends the stream with an error event that does not offer a retry. A subclass that sets
    `status_code` without its own `code` gets the generic code of that status, so the code
    always matches the status.
    """

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not 400 <= cls.status_code < 500:
            raise TypeError(
                f"{cls.__name__}.status_code must be a 4xx status, got {cls.status_code}"
            )
        if "code" not in cls.__dict__ and "status_code" in cls.__dict__:
            cls.code = code_for_status(cls.status_code)


class UnstorableValueError(ClientRequestError, ValueError):
    """A value a store cannot store: an owner key or id over its byte limit, or with a NUL.

    A `ValueError`, as the ChatKit store contract has bad arguments raise. When the value comes
    from the request (an owner built from a header, an id the client sent) the endpoint answers
    400 instead of a 500 with a traceback.
    """

    code = "invalid_request"
