"""Types shared by chatkit-kit's HTTP pieces (the ChatKit endpoint and the upload routes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from starlette.requests import Request

ContextFactory = Callable[["Request"], Awaitable[Any]]
"""Builds the app's ChatKit context from an HTTP request.

It may reject the request by raising `starlette.exceptions.HTTPException` (401 or 403).
"""


class ClientRequestError(Exception):
    """An error caused by the client's request; HTTP endpoints answer with `status_code`.

    `chatkit_kit.asgi` maps it to that status (with the message as the body's message) when it
    is raised before a response has started, e.g. a policy violation in `attachments.create`.
    """

    status_code = 400
    code = "bad_request"
