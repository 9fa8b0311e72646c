"""Mapping a ChatKit request context to the owner key that scopes every stored row."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

OwnerResolver = Callable[[Any], str]
"""A callable that returns the owner key (for example the user id) of a request context."""

MAX_OWNER_LENGTH = 1024


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


def resolve_owner(owner: OwnerResolver, context: Any) -> str:
    """Run `owner` on `context` and check that the result is a usable key."""
    key = owner(context)
    if not isinstance(key, str):
        raise TypeError(
            f"the store's owner resolver returned {type(key).__name__}, expected str; "
            "return a string id such as the user id"
        )
    if not key:
        raise ValueError(
            "the store's owner resolver returned an empty owner key; every request needs a "
            "non-empty owner (user) id so that users cannot see each other's data"
        )
    if len(key) > MAX_OWNER_LENGTH or "\x00" in key:
        raise ValueError(
            f"owner key {key[:40]!r}... is not usable: at most {MAX_OWNER_LENGTH} characters "
            "and no NUL characters"
        )
    return key
