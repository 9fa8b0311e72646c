"""The rules every chatkit-kit store applies to what it is given: ids, owners, pages.

Keys always fit. Every id (thread, item, attachment) is at most MAX_ID_BYTES = 512 bytes of
UTF-8 and the owner key at most MAX_OWNER_BYTES = 1024, so the widest key of any index
(owner, thread id, item id) is at most 2,048 bytes: inside PostgreSQL's btree entry limit
(2,704 bytes) and InnoDB's index limit (3,072 bytes) even when no byte compresses. Limits are in
UTF-8 bytes, not characters: 512 ASCII characters fit, and so do 128 four-byte characters.

Same input, same outcome in every store. An id is storable when it is a non-empty str that
UTF-8 can encode (no lone surrogates), with no U+0000, within the byte limit. Writes of an id
that is not storable raise ValueError; reads and deletes of one behave as for any unknown id
(NotFoundError, an empty page, or a no-op), since no such row can exist. Such ids never reach a
database driver.

Pages are keyset pages over `(sort_key, seq)`: `sort_key` is `created_at` as integer
microseconds since the Unix epoch in UTC, `seq` a store-assigned insertion counter that breaks
ties, so `desc` is the exact reverse of `asc`. `after` is exclusive and may name any row of the
collection, hidden items included; an unknown `after` raises `NotFoundError`. A page fetches
`limit + 1` rows; `has_more=True` always comes with `after` set to the id of the page's last row.
See docs/contract.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeVar

from chatkit.types import Page

from .._http import UnstorableValueError

# Ids and owners

MAX_ID_BYTES = 512
"""Longest storable id (thread, item or attachment), in UTF-8 bytes."""

MAX_OWNER_BYTES = 1024
"""Longest owner key, in UTF-8 bytes."""

MAX_ID_LENGTH = MAX_ID_BYTES
"""Deprecated name of MAX_ID_BYTES (ids were once limited in characters)."""

OwnerResolver = Callable[[Any], str]
"""A callable that returns the owner key (for example the user id) of a request context."""


def _utf8_size(value: str, limit: int) -> int | None:
    """UTF-8 size of `value`, or None when it has a lone surrogate or is surely over `limit`."""
    if len(value) > limit:  # every character is at least one byte
        return None
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def _fits(value: str, limit: int) -> bool:
    size = _utf8_size(value, limit)
    return size is not None and 0 < size <= limit and "\x00" not in value


def is_storable_id(value: Any) -> bool:
    """Whether `value` can name a stored row: a non-empty str of at most 512 UTF-8 bytes that
    UTF-8 can encode, without U+0000."""
    return isinstance(value, str) and _fits(value, MAX_ID_BYTES)


def _shown(value: str) -> str:
    return repr(value[:40] + ("..." if len(value) > 40 else ""))


def check_id(value: Any, what: str) -> str:
    """Return `value` if it is a storable id, else raise ValueError naming the rule it breaks.

    Used on writes. Reads and deletes of an unstorable id behave as for any unknown id.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not is_storable_id(value):
        raise UnstorableValueError(
            f"{what} {_shown(value)} cannot be stored: ids must be 1 to {MAX_ID_BYTES} bytes "
            "of UTF-8 (no lone surrogates) and contain no NUL (U+0000) characters"
        )
    return value


def default_owner(context: Any) -> str:
    """Return `context.user_id`, or `context["user_id"]` for a mapping."""
    if isinstance(context, Mapping):
        value = context.get("user_id")
    else:
        value = getattr(context, "user_id", None)
    if value is None:
        raise TypeError(
            f"cannot find an owner in a context of type {type(context).__name__}: the default "
            "owner resolver reads `context.user_id` or `context['user_id']`. Give the store an "
            "owner resolver, for example `MemoryStore(owner=lambda ctx: ctx.account.id)`."
        )
    return value if isinstance(value, str) else str(value)


def check_owner(key: Any) -> str:
    """Return `key` if it is a usable owner key, else raise TypeError or ValueError."""
    if not isinstance(key, str):
        raise TypeError(
            f"the store's owner resolver returned {type(key).__name__}, expected str; "
            "return a string id such as the user id"
        )
    if not key:
        raise UnstorableValueError(
            "the store's owner resolver returned an empty owner key; every request needs a "
            "non-empty owner (user) id so that users cannot see each other's data"
        )
    if not _fits(key, MAX_OWNER_BYTES):
        raise UnstorableValueError(
            f"owner key {_shown(key)} is not usable: at most {MAX_OWNER_BYTES} bytes of UTF-8 "
            "(no lone surrogates) and no NUL (U+0000) characters"
        )
    return key


def resolve_owner(owner: OwnerResolver, context: Any) -> str:
    """Run `owner` on `context` and check that the result is a usable key."""
    return check_owner(owner(context))


# Pages

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
