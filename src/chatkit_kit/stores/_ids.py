"""The one rule for ids a store accepts (thread, item and attachment ids)."""

from __future__ import annotations

from typing import Any

MAX_ID_LENGTH = 512


def is_storable_id(value: Any) -> bool:
    """Whether `value` can name a stored row: a non-empty str, at most 512 chars, no NUL."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and "\x00" not in value


def check_id(value: Any, what: str) -> str:
    """Return `value` if it is a storable id, else raise ValueError naming the rule it breaks.

    Used on writes. Reads and deletes of an unstorable id behave as for any unknown id
    (NotFoundError, an empty page, or a no-op), since no such row can exist.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not is_storable_id(value):
        shown = value[:40] + ("..." if len(value) > 40 else "")
        raise ValueError(
            f"{what} {shown!r} cannot be stored: ids must be 1 to {MAX_ID_LENGTH} characters "
            "long and contain no NUL (U+0000) characters"
        )
    return value
