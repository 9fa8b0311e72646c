"""Hand a ChatKit request the endpoint already parsed to upstream's server, without a second parse.

Upstream's `ChatKitServer.process(body, context)` builds a new `TypeAdapter(ChatKitReq)` for
every request (most of a cheap request's CPU) and then routes the parsed request to
`_process_streaming` or `_process_non_streaming`. The endpoint validates the body once with its
module-level adapter (the same type, so everything upstream validates is still validated) and
calls those two methods itself, as `process` would.

Those two methods are upstream internals, so this module checks, once at import, that
`ChatKitServer.process` still has the shape it was written against (its signature, the names
its code uses, and the routing methods' signatures; `tests/test_dispatch.py` also pins its
source). If upstream changes that shape, or an app's server class overrides `process`, the
endpoint calls `process` with the raw body instead: slower, never wrong. The supported upstream
range is pinned in pyproject.toml.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.types import ChatKitReq, is_streaming_req
from pydantic import TypeAdapter

__all__ = [
    "REQUEST_ADAPTER",
    "UPSTREAM_SHAPE_OK",
    "process_parsed",
    "routes_itself",
    "upstream_shape_problems",
]

_upstream_logger = logging.getLogger("chatkit")
logger = logging.getLogger("chatkit_kit.asgi")

_PROCESS = ChatKitServer.process

REQUEST_ADAPTER: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
"""The one adapter every request is parsed with (upstream's `process` builds one per call)."""

# What `ChatKitServer.process` of openai-chatkit 1.6 uses: parse with a new TypeAdapter, log the
# op, route by `is_streaming_req` to the two methods below, wrap the result.
_PROCESS_NAMES = frozenset(
    {
        "TypeAdapter",
        "ChatKitReq",
        "validate_json",
        "logger",
        "info",
        "type",
        "is_streaming_req",
        "StreamingResult",
        "_process_streaming",
        "NonStreamingResult",
        "_process_non_streaming",
    }
)
# The methods `process` routes to, each with the kind of function it has to be.
_ROUTES: dict[str, Callable[[Any], bool]] = {
    "_process_streaming": inspect.isasyncgenfunction,
    "_process_non_streaming": inspect.iscoroutinefunction,
}


def upstream_shape_problems(cls: type[Any] = ChatKitServer) -> list[str]:
    """How `cls.process` (upstream's) differs from the shape `process_parsed` mirrors."""
    problems: list[str] = []
    process = cls.process
    params = list(inspect.signature(process).parameters)
    if params != ["self", "request", "context"]:
        problems.append(f"ChatKitServer.process takes {params}, expected (self, request, context)")
    code = getattr(process, "__code__", None)
    names = set(code.co_names) if code is not None else set()
    if names != _PROCESS_NAMES:
        problems.append(
            "ChatKitServer.process uses different names: "
            f"added {sorted(names - _PROCESS_NAMES)}, gone {sorted(_PROCESS_NAMES - names)}"
        )
    for route, is_kind in _ROUTES.items():
        method = getattr(cls, route, None)
        if method is None:
            problems.append(f"ChatKitServer.{route} is gone")
            continue
        route_params = list(inspect.signature(method).parameters)
        if route_params != ["self", "request", "context"]:
            problems.append(f"ChatKitServer.{route} takes {route_params}")
        elif not is_kind(method):
            problems.append(f"ChatKitServer.{route} is not {is_kind.__name__.removeprefix('is')}")
    return problems


_problems = upstream_shape_problems()
UPSTREAM_SHAPE_OK = not _problems
"""Whether `process_parsed` routes requests itself (else it calls upstream's `process`)."""
if _problems:  # pragma: no cover - only with an upstream outside the supported range
    logger.warning(
        "chatkit_kit.asgi: upstream ChatKitServer.process changed shape (%s); every request "
        "is parsed twice (once by the endpoint, once by process)",
        "; ".join(_problems),
    )


def routes_itself(server: ChatKitServer[Any]) -> bool:
    """Whether `process_parsed` skips `server.process` for this server."""
    return UPSTREAM_SHAPE_OK and getattr(type(server), "process", None) is _PROCESS


async def process_parsed(
    server: ChatKitServer[Any], request: ChatKitReq, body: bytes, context: Any
) -> StreamingResult | NonStreamingResult:
    """What `server.process(body, context)` returns, for `request` already parsed from `body`."""
    if not routes_itself(server):
        return await server.process(body, context)
    if _upstream_logger.isEnabledFor(logging.INFO):
        _upstream_logger.info("Received request op: %s", request.type)
    if is_streaming_req(request):
        return StreamingResult(server._process_streaming(request, context))
    return NonStreamingResult(await server._process_non_streaming(request, context))
