"""The pagination rule shared by every store.

Pages are keyset pages over `(sort_key, seq)`: `sort_key` is `created_at` as integer
microseconds since the Unix epoch in UTC, `seq` a store-assigned insertion counter that breaks
ties, so `desc` is the exact reverse of `asc`. `after` is exclusive and may name any row of the
collection, hidden items included; an unknown `after` raises `NotFoundError`. A page fetches
`limit + 1` rows; `has_more=True` always comes with `after` set to the id of the page's last row.
See chatkit-contract.md section 1.4.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeVar

from chatkit.types import Page

R = TypeVar("R")
T = TypeVar("T")

Order = Literal["asc", "desc"]

MAX_PAGE_LIMIT = 1000
"""Largest page a store returns; larger `limit` values are capped to it."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def check_order(order: Any) -> Order:
    """Return `order` if it is "asc" or "desc", else raise ValueError."""
    if order == "asc":
        return "asc"
    if order == "desc":
        return "desc"
    raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")


def check_limit(limit: Any) -> int:
    """Return `limit` capped to MAX_PAGE_LIMIT; raise ValueError below 1, TypeError if not int."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, got {type(limit).__name__}")
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    return min(limit, MAX_PAGE_LIMIT)


def sort_key(created_at: datetime) -> int:
    """Return the sort key of `created_at`: integer microseconds since the epoch, in UTC.

    Aware values are converted to UTC. Naive values are read as process-local time (what
    upstream's `datetime.now()` produces), so run every writer with the same TZ (TZ=UTC is
    simplest); naive values the platform cannot localize are read as UTC.
    """
    if created_at.tzinfo is None or created_at.utcoffset() is None:
        try:
            aware = created_at.astimezone(timezone.utc)
        except (OverflowError, OSError, ValueError):
            aware = created_at.replace(tzinfo=timezone.utc)
    else:
        aware = created_at
    return (aware - _EPOCH) // _MICROSECOND


def build_page(
    rows: Sequence[R],
    limit: int,
    id_of: Callable[[R], str],
    decode: Callable[[Sequence[R]], list[T]],
) -> Page[T]:
    """Build a Page from up to `limit + 1` rows fetched in page order.

    `decode` turns the first `limit` rows into models in one call; the extra row only tells
    that there is more.
    """
    has_more = len(rows) > limit
    kept = rows[:limit]
    return Page(
        data=decode(kept),
        has_more=has_more,
        after=id_of(kept[-1]) if has_more else None,
    )
