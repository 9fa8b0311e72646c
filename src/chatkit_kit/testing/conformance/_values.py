"""Small builders and checks that the rules share."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    InferenceOptions,
    Page,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)

from ._harness import Harness

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456)


def user_message(
    item_id: str, thread_id: str, created_at: datetime, text: str = "hi"
) -> ThreadItem:
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=created_at,
        content=[UserMessageTextContent(text=text)],
        inference_options=InferenceOptions(),
    )


def assistant(item_id: str, thread_id: str, created_at: datetime, text: str = "ok") -> ThreadItem:
    return AssistantMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=created_at,
        content=[AssistantMessageContent(text=text)],
    )


def thread(thread_id: str, created_at: datetime = T0, title: str | None = None) -> ThreadMetadata:
    return ThreadMetadata(id=thread_id, created_at=created_at, title=title)


def ids(rows: list[Any]) -> list[str]:
    return [row.id for row in rows]


async def raises_not_found(awaitable: Awaitable[Any]) -> NotFoundError | None:
    try:
        await awaitable
    except NotFoundError as exc:
        return exc
    return None


async def raises(awaitable: Awaitable[Any], kind: type[BaseException]) -> bool:
    try:
        await awaitable
    except kind:
        return True
    return False


Loader = Callable[[str | None, int], Awaitable[Page[Any]]]


async def walk(h: Harness, load: Loader, limit: int, max_pages: int) -> list[Any]:
    """Follow `after` cursors to the end, checking every page; return all rows."""
    rows: list[Any] = []
    after: str | None = None
    for _ in range(max_pages):
        page = await load(after, limit)
        h.check(len(page.data) <= limit, f"page of {len(page.data)} rows for limit {limit}")
        if page.has_more:
            h.check(
                bool(page.data) and page.after == page.data[-1].id,
                f"has_more=True needs after=<id of the page's last row>; got after="
                f"{page.after!r}, last row {page.data[-1].id if page.data else None!r}",
            )
        else:
            h.check(not page.after, f"after={page.after!r} on the last page (has_more=False)")
        rows.extend(page.data)
        if not page.has_more:
            return rows
        after = page.after
    h.fail(f"pagination did not end within {max_pages} pages (a cursor restarts the walk?)")


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values *and* of the same types: 1.0 is not 1, -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def short(value: Any, limit: int = 200) -> str:
    """`repr(value)`, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}...({len(text)} chars)"


def difference(expected: Any, got: Any) -> str:
    """Where two models (or JSON values) first differ, as `path: expected ... got ...`."""
    if type(expected) is not type(got):
        return f"expected a {type(expected).__name__}, got a {type(got).__name__}: {short(got)}"
    if hasattr(expected, "model_dump"):
        for name in type(expected).model_fields:
            a, b = getattr(expected, name), getattr(got, name)
            if a != b or type(a) is not type(b):
                return f".{name}: {difference(a, b)}"
        extra_a, extra_b = expected.model_extra or {}, got.model_extra or {}
        if extra_a != extra_b:
            return f"extra properties: expected {short(extra_a)}, got {short(extra_b)}"
        return "equal"
    if isinstance(expected, list) and len(expected) == len(got):
        for i, (a, b) in enumerate(zip(expected, got, strict=True)):
            if a != b or type(a) is not type(b):
                return f"[{i}]{difference(a, b)}"
    if isinstance(expected, dict) and expected.keys() == got.keys():
        for key in expected:
            if expected[key] != got[key] or type(expected[key]) is not type(got[key]):
                return f"[{key!r}]{difference(expected[key], got[key])}"
    return f" expected {short(expected)}, got {short(got)}"
