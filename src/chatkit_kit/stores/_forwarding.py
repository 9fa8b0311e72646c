"""`ForwardingStore`: a `Store` that passes every call to the store it wraps.

The base of wrappers that add a cross-cutting concern (attachment presentation, tracing,
metrics, access rules): subclass it and override only the methods whose behaviour changes.
Besides the ChatKit `Store` API it forwards what chatkit-kit stores offer on top, so a wrapper
still works where they are expected: retention (`erase_owner`, `prune`: `RetentionStore`) and the
attachment index (`list_thread_attachments`, `list_unattached_attachments`,
`delete_orphan_attachment`: `AttachmentIndex`). Those raise TypeError, naming the missing method,
when the wrapped store does not have it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Generic

from chatkit.store import Store, StoreItemType, TContext
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata

from ._index import StoredAttachment


class ForwardingStore(Store[TContext], Generic[TContext]):
    """Every call goes to `store`; subclasses override what they change.

    ```python
    class TracedStore(ForwardingStore[Ctx]):
        async def load_thread(self, thread_id: str, context: Ctx) -> ThreadMetadata:
            with tracer.start_as_current_span("load_thread"):
                return await super().load_thread(thread_id, context)
    ```
    """

    def __init__(self, store: Store[TContext]) -> None:
        if not isinstance(store, Store):
            raise TypeError(f"store must be a chatkit.store.Store, got {type(store).__name__}")
        self._store = store

    @property
    def store(self) -> Store[TContext]:
        """The store every call goes to."""
        return self._store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store!r})"

    def _extension(self, name: str) -> Callable[..., Any]:
        method = getattr(self._store, name, None)
        if method is None:
            raise TypeError(
                f"{type(self).__name__} wraps a {type(self._store).__name__}, which has no {name}()"
            )
        return method  # type: ignore[no-any-return]

    # Ids

    def generate_thread_id(self, context: TContext) -> str:
        return self._store.generate_thread_id(context)

    def generate_item_id(
        self, item_type: StoreItemType, thread: ThreadMetadata, context: TContext
    ) -> str:
        return self._store.generate_item_id(item_type, thread, context)

    # Threads

    async def load_thread(self, thread_id: str, context: TContext) -> ThreadMetadata:
        return await self._store.load_thread(thread_id, context)

    async def save_thread(self, thread: ThreadMetadata, context: TContext) -> None:
        await self._store.save_thread(thread, context)

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: TContext
    ) -> Page[ThreadMetadata]:
        return await self._store.load_threads(limit, after, order, context)

    async def delete_thread(self, thread_id: str, context: TContext) -> None:
        await self._store.delete_thread(thread_id, context)

    # Items

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: TContext
    ) -> Page[ThreadItem]:
        return await self._store.load_thread_items(thread_id, after, limit, order, context)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: TContext) -> None:
        await self._store.add_thread_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: TContext) -> None:
        await self._store.save_item(thread_id, item, context)

    async def load_item(self, thread_id: str, item_id: str, context: TContext) -> ThreadItem:
        return await self._store.load_item(thread_id, item_id, context)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: TContext) -> None:
        await self._store.delete_thread_item(thread_id, item_id, context)

    # Attachments

    async def save_attachment(self, attachment: Attachment, context: TContext) -> None:
        await self._store.save_attachment(attachment, context)

    async def load_attachment(self, attachment_id: str, context: TContext) -> Attachment:
        return await self._store.load_attachment(attachment_id, context)

    async def delete_attachment(self, attachment_id: str, context: TContext) -> None:
        await self._store.delete_attachment(attachment_id, context)

    # AttachmentIndex of the wrapped store

    async def list_thread_attachments(self, thread_id: str, context: TContext) -> list[Attachment]:
        found: list[Attachment] = await self._extension("list_thread_attachments")(
            thread_id, context
        )
        return found

    async def list_unattached_attachments(
        self, saved_before: datetime, limit: int = 100
    ) -> list[StoredAttachment]:
        found: list[StoredAttachment] = await self._extension("list_unattached_attachments")(
            saved_before, limit
        )
        return found

    async def delete_orphan_attachment(self, owner: str, attachment_id: str) -> bool:
        deleted: bool = await self._extension("delete_orphan_attachment")(owner, attachment_id)
        return deleted

    # RetentionStore of the wrapped store

    async def erase_owner(self, owner: str, **options: Any) -> int:
        """The wrapped store's `erase_owner` (`batch_size`, `progress`, `attachments`)."""
        erased: int = await self._extension("erase_owner")(owner, **options)
        return erased

    async def prune(self, older_than: timedelta, owner: str | None = None, **options: Any) -> int:
        """The wrapped store's `prune` (`batch_size`, `dry_run`, `progress`, `attachments`)."""
        pruned: int = await self._extension("prune")(older_than, owner, **options)
        return pruned
