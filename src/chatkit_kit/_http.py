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
