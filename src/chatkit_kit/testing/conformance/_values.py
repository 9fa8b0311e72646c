"""Small builders and checks that the rules share."""

from __future__ import annotations

import math
import typing
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ClientToolCallItem,
    HiddenContextItem,
    InferenceOptions,
    Page,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)
from pydantic import BaseModel

from ._harness import Harness

T0 = datetime(2026, 1, 2, 3, 4, 5, 123456)
_ITEM_TYPES: tuple[type[Any], ...] = typing.get_args(typing.get_args(ThreadItem)[0])


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


async def walk(
    h: Harness, load: Loader, limit: int, max_pages: int, what: str = "a page walk"
) -> list[Any]:
    """Follow `after` cursors to the end, checking every page; return all rows.

    `after` on the last page (has_more=False) is accepted: the server reads `after` only while
    `has_more` is true.
    """
    rows: list[Any] = []
    after: str | None = None
    for number in range(1, max_pages + 1):
        page = await load(after, limit)
        shown = f"{what}, page {number} (after={short(after, 40)}, limit {limit})"
        h.check(len(page.data) <= limit, f"{shown}: {len(page.data)} rows, more than the limit")
        if page.has_more:
            h.check(
                bool(page.data) and page.after == page.data[-1].id,
                f"{shown}: has_more=True needs after=<id of the page's last row>; got after="
                f"{short(page.after, 40)}, last row "
                f"{short(page.data[-1].id if page.data else None, 40)}",
            )
        rows.extend(page.data)
        if not page.has_more:
            return rows
        after = page.after
    h.fail(
        f"{what} did not end within {max_pages} pages (limit {limit}): a cursor restarts "
        "the walk (upstream's retry walk would loop forever)"
    )


def same_json(a: Any, b: Any, *, client_view: bool = False) -> bool:
    """Equal as JSON values and of the same types (1.0 is not 1, -0.0 is not 0.0); with
    `client_view`, numbers are equal when the client reads the same double."""
    if client_view and _is_number(a) and _is_number(b):
        return bool(_client_number(a) == _client_number(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(
            same_json(a[k], b[k], client_view=client_view) for k in a
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(
            same_json(x, y, client_view=client_view) for x, y in zip(a, b, strict=True)
        )
    return bool(a == b)


JSON_SAMPLE: dict[str, Any] = {
    "big_float": 1.06e19,
    "neg_zero": -0.0,
    "float_one": 1.0,
    "big_int": 2**62,
    "tiny": 5e-324,
    "nested": [{"x": 0.1}, [1, 1.5, -0.0], "1e3", True, None],
}


async def check_json_values(h: Harness, *, client_view: bool) -> None:
    """Save JSON_SAMPLE in thread metadata, hidden context and a tool call; compare."""
    ctx = h.context()
    value = JSON_SAMPLE
    tid, hidden_id, call_id = h.names("thr", "h", "c")
    saved = ThreadMetadata(id=tid, created_at=T0, metadata={"v": value})
    await h.store.save_thread(saved, ctx)
    items: list[ThreadItem] = [
        HiddenContextItem(id=hidden_id, thread_id=tid, created_at=T0, content=value),
        ClientToolCallItem(
            id=call_id,
            thread_id=tid,
            created_at=T0,
            call_id="call",
            name="tool",
            arguments={"v": value},
            output=value,
        ),
    ]
    for item in items:
        await h.store.add_thread_item(tid, item, ctx)

    def check(where: str, expected: Any, got: Any) -> None:
        if same_json(expected, got, client_view=client_view):
            return
        for key in expected:
            if not isinstance(got, dict) or not same_json(
                expected[key], got.get(key), client_view=client_view
            ):
                shown = got.get(key) if isinstance(got, dict) else got
                h.fail(f"{where}[{key!r}] expected {short(expected[key])}, got {short(shown)}")
        h.fail(f"{where} expected {short(expected)}, got {short(got)}")

    loaded_thread = await h.store.load_thread(tid, ctx)
    check(f"load_thread({tid!r}): thread .metadata['v']", value, loaded_thread.metadata.get("v"))
    hidden = await h.store.load_item(tid, hidden_id, ctx)
    loaded_at = f"load_item({tid!r}, {hidden_id!r})"
    check(f"{loaded_at}: item .content", value, getattr(hidden, "content", None))
    call = await h.store.load_item(tid, call_id, ctx)
    loaded_at = f"load_item({tid!r}, {call_id!r})"
    arguments = getattr(call, "arguments", None)
    check(
        f"{loaded_at}: item .arguments['v']",
        value,
        arguments.get("v") if isinstance(arguments, dict) else arguments,
    )
    check(f"{loaded_at}: item .output", value, getattr(call, "output", None))


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut to `limit` characters (generated values can be thousands long)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 18]}...({len(text)} chars)"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _client_number(value: int | float) -> float | int:
    """The number as the ChatKit client reads it (a JavaScript double): 1.06e19 and its
    integer, -0.0 and 0.0 are the same number."""
    try:
        return float(value)
    except OverflowError:
        return value


def as_utc(value: datetime) -> datetime:
    """An aware datetime, a naive one read as UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python", exclude_unset=False)
    return value


def _json_path(path: str, key: Any) -> str:
    if isinstance(key, str):
        return f"{path}.{key}" if key.isidentifier() else f"{path}[{short(key, 30)}]"
    return f"{path}[{key}]"


def _value_difference(expected: Any, got: Any, path: str) -> tuple[str, Any, Any] | None:
    """(path, expected, got) of the first difference as the client would see it, or None."""
    expected, got = _dump(expected), _dump(got)
    if _is_number(expected) and _is_number(got):
        same = _client_number(expected) == _client_number(got)
        return None if same else (path, expected, got)
    if isinstance(expected, datetime) and isinstance(got, datetime):
        same = (
            expected == got
            and (expected.tzinfo is None) == (got.tzinfo is None)
            and expected.utcoffset() == got.utcoffset()
        )
        return None if same else (path, expected, got)
    if type(expected) is not type(got):
        return (path, expected, got)
    if isinstance(expected, dict):
        lost = [key for key in expected if key not in got]
        if lost:
            return (f"{path} lost properties {short(lost, 80)}", None, None)
        extra = [key for key in got if key not in expected]
        if extra:
            return (f"{path} has unexpected properties {short(extra, 80)}", None, None)
        for key in expected:
            found = _value_difference(expected[key], got[key], _json_path(path, key))
            if found is not None:
                return found
        return None
    if isinstance(expected, (list, tuple)):
        if len(expected) != len(got):
            return (f"{path} (length {len(expected)} expected, {len(got)} got)", expected, got)
        for i, (a, b) in enumerate(zip(expected, got, strict=True)):
            found = _value_difference(a, b, _json_path(path, i))
            if found is not None:
                return found
        return None
    return None if expected == got else (path, expected, got)


def _describe(what: str, found: tuple[str, Any, Any]) -> str:
    path, expected, got = found
    if expected is None and got is None and " properties " in path:
        return f"{what}: {path.strip()}"
    return f"{what}: {path.strip() or 'value'} expected {short(expected)}, got {short(got)}"


def row_difference(
    expected: Any, got: Any, *, created_at_choices: tuple[datetime, ...] = ()
) -> str | None:
    """What differs between an expected thread, item or attachment and the one the store
    returned, as the client would see it; None when they are the same.

    The message names the row (`thread 'thr'`, `item 'm0'`), the field (`.metadata['k'][2]`)
    and both values, cut short. Numbers compare as the client reads them (JSON numbers are
    doubles). A thread's `created_at` may come back as the same instant in UTC (a naive value
    read as UTC) or as any of `created_at_choices` (a store keeping the first `created_at` on
    upsert): the server never computes with a thread's `created_at`. Items' must be exact.
    """
    kind = "thread" if isinstance(expected, ThreadMetadata) else "item"
    if not isinstance(expected, (ThreadMetadata, *_ITEM_TYPES)):
        kind = type(expected).__name__
    what = f"{kind} {short(getattr(expected, 'id', '?'), 40)}"
    if type(expected) is not type(got):
        return f"{what}: came back as a {type(got).__name__}, expected a {type(expected).__name__}"
    widget_a, widget_b = getattr(expected, "widget", None), getattr(got, "widget", None)
    if widget_a is not None and type(widget_a) is not type(widget_b):
        lost = _value_difference(widget_a, widget_b, ".widget")
        detail = f"; {_describe(what, lost)}" if lost else ""
        return (
            f"{what}: .widget came back as a {type(widget_b).__name__}, expected a "
            f"{type(widget_a).__name__}{detail}"
        )
    a, b = _dump(expected), _dump(got)
    if isinstance(expected, ThreadMetadata):
        choices = (expected.created_at, *created_at_choices)
        stamp = b.get("created_at")
        if isinstance(stamp, datetime) and any(as_utc(c) == as_utc(stamp) for c in choices):
            b = {**b, "created_at": a["created_at"]}
    found = _value_difference(a, b, "")
    return None if found is None else _describe(what, found)


def same_row(expected: Any, got: Any, *, created_at_choices: tuple[datetime, ...] = ()) -> bool:
    return row_difference(expected, got, created_at_choices=created_at_choices) is None


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
