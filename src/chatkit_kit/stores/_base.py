"""Behaviour shared by every chatkit-kit store: owner scoping and id checks."""

from __future__ import annotations

from typing import Any, Generic, Protocol, runtime_checkable

from chatkit.store import NotFoundError, Store, TContext
from chatkit.types import Attachment, ThreadItem, UserMessageItem

from ._index import ThreadDeleteListener
from ._rules import OwnerResolver, default_owner, resolve_owner


@runtime_checkable
class AttachmentPresenter(Protocol):
    """Rewrites attachment metadata as it leaves a store, e.g. to refresh an expiring preview URL.

    Attachment backends whose URLs expire implement this; a store given one runs every
    attachment it returns through it: `load_attachment`, and the attachments embedded in the
    user messages returned by `load_thread_items` and `load_item` (docs/contract.md#previews).
    """

    async def present_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        """Return the attachment as the client should see it now."""
        ...


class OwnerScopedStore(Store[TContext], Generic[TContext]):
    """A `Store` whose rows all belong to the owner that `owner(context)` names.

    Rows of one owner are invisible to every other owner, and equal ids under different owners
    are different rows. `owner` defaults to `context.user_id` or `context["user_id"]`.
    """

    def __init__(
        self,
        *,
        owner: OwnerResolver | None = None,
        attachment_presenter: AttachmentPresenter | None = None,
    ) -> None:
        self.owner: OwnerResolver = owner if owner is not None else default_owner
        self.attachment_presenter: AttachmentPresenter | None = attachment_presenter

    def owner_key(self, context: Any) -> str:
        """Return the owner key of `context` (raises TypeError when none can be found)."""
        return resolve_owner(self.owner, context)

    async def present_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        """Run `attachment` through the attachment presenter, if the store has one."""
        if self.attachment_presenter is None:
            return attachment
        return await self.attachment_presenter.present_attachment(attachment, context)

    async def present_item(self, item: ThreadItem, context: Any) -> ThreadItem:
        """Present the attachments embedded in a user message; other items pass through."""
        if self.attachment_presenter is None or not isinstance(item, UserMessageItem):
            return item
        if not item.attachments:
            return item
        item.attachments = [await self.present_attachment(a, context) for a in item.attachments]
        return item

    async def before_thread_delete(self, thread_id: str, context: Any) -> None:
        """Let the attachment presenter act before `delete_thread` deletes anything.

        Every store calls this first in `delete_thread`; attachment backends use it for the opt-in
        cascade to a thread's attachments (`delete_with_thread=True`). If it raises, nothing of
        the thread is deleted, so the request can be retried.
        """
        if isinstance(self.attachment_presenter, ThreadDeleteListener):
            await self.attachment_presenter.before_thread_delete(thread_id, context)


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
