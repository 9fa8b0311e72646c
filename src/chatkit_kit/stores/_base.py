"""Behaviour shared by every chatkit-kit store: owner scoping and id checks."""

from __future__ import annotations

from typing import Any, Generic

from chatkit.store import NotFoundError, Store, TContext

from ._rules import OwnerResolver, default_owner, resolve_owner


class OwnerScopedStore(Store[TContext], Generic[TContext]):
    """A `Store` whose rows all belong to the owner that `owner(context)` names.

    Rows of one owner are invisible to every other owner, and equal ids under different owners
    are different rows. `owner` defaults to `context.user_id` or `context["user_id"]`.
    """

    def __init__(self, *, owner: OwnerResolver | None = None) -> None:
        self.owner: OwnerResolver = owner if owner is not None else default_owner

    def owner_key(self, context: Any) -> str:
        """Return the owner key of `context` (raises TypeError when none can be found)."""
        return resolve_owner(self.owner, context)


def thread_not_found(thread_id: str) -> NotFoundError:
    """The error `load_thread` raises; upstream tests match this exact wording."""
    return NotFoundError(f"Thread {thread_id} not found")


def item_not_found(thread_id: str, item_id: str) -> NotFoundError:
    """The error `load_item` raises."""
    return NotFoundError(f"Item {item_id} not found in thread {thread_id}")


def attachment_not_found(attachment_id: str) -> NotFoundError:
    """The error `load_attachment` raises."""
    return NotFoundError(f"Attachment {attachment_id} not found")


def cursor_not_found(cursor: str, collection: str) -> NotFoundError:
    """The error a page load raises for an `after` cursor that names no row."""
    return NotFoundError(f"Cursor {cursor!r} not found in {collection}")
