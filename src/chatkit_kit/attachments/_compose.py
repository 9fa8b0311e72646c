"""The one composition step of a store and an attachment backend: `StoreWithAttachments`.

Dependencies run one way. A backend holds the store it keeps attachment metadata in and reads
it directly; the store knows nothing about attachments. `StoreWithAttachments` is the store as
ChatKit should see it: every call goes to the store, and on the way out the backend refreshes the
attachments (preview URLs, finished upload descriptors); before `delete_thread` it may delete the
thread's attachments.
"""

from __future__ import annotations

from typing import Any, Generic, Protocol, runtime_checkable

from chatkit.store import NotFoundError, Store, TContext
from chatkit.types import Attachment, GeneratedImageItem, Page, ThreadItem, UserMessageItem

from ..stores import ForwardingStore
from .generated import generated_image_attachment_id, generated_image_url


@runtime_checkable
class AttachmentPresenter(Protocol):
    """Rewrites an attachment as it leaves the store, e.g. to refresh an expiring preview URL.

    `StoreWithAttachments` runs every attachment it returns through it: `load_attachment`, and
    the attachments embedded in the user messages of `load_thread_items` and `load_item`
    (docs/contract.md#previews).
    """

    async def present_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        """Return the attachment as the client should see it now."""
        ...


@runtime_checkable
class ThreadDeleteListener(Protocol):
    """An attachment backend that acts before a thread is deleted (the opt-in cascade)."""

    async def before_thread_delete(self, thread_id: str, context: Any) -> None:
        """Called by `StoreWithAttachments.delete_thread` before the store deletes anything.

        If it raises, the thread is not deleted, so the request can be retried.
        """
        ...


class StoreWithAttachments(ForwardingStore[TContext], Generic[TContext]):
    """`store` with `attachments` composed in: give this to `ChatKitServer`.

    ```python
    store = SQLAlchemyStore.from_url(url)
    attachments = S3AttachmentStore(store, client=s3, bucket="uploads")
    server = MyServer(StoreWithAttachments(store, attachments), attachments)
    ```

    Every method calls the same method of `store` (a `ForwardingStore`), so a subclass of a
    chatkit-kit store (or any `Store`) keeps all its overrides, and retention (`erase_owner`,
    `prune`) and the `AttachmentIndex` queries reach it too. On top of that, attachments
    returned by `load_attachment`, `load_item` and `load_thread_items` go through
    `attachments.present_attachment` (if the backend is an `AttachmentPresenter`), and
    `delete_thread` first awaits
    `attachments.before_thread_delete` (if it is a `ThreadDeleteListener`). The backend itself
    reads `store` directly, so its own loads are never presented. Keep `store` for the rest
    (`migrate()`, `close()`).
    """

    def __init__(
        self,
        store: Store[TContext],
        attachments: AttachmentPresenter | ThreadDeleteListener,
    ) -> None:
        if isinstance(store, StoreWithAttachments):
            raise TypeError(
                "store is already a StoreWithAttachments; compose the underlying store "
                "(StoreWithAttachments(store, attachments)) once"
            )
        super().__init__(store)
        presenter = attachments if isinstance(attachments, AttachmentPresenter) else None
        listener = attachments if isinstance(attachments, ThreadDeleteListener) else None
        if presenter is None and listener is None:
            raise TypeError(
                f"{type(attachments).__name__} has neither present_attachment nor "
                "before_thread_delete, so there is nothing to compose: give the store to "
                "ChatKit as it is"
            )
        backend_store = getattr(attachments, "store", store)
        if backend_store is not store:
            raise ValueError(
                f"the attachment backend keeps its metadata in another store "
                f"({type(backend_store).__name__} object at {id(backend_store):#x}); compose it "
                "with the store it was created with"
            )
        self._attachments = attachments
        self._presenter = presenter
        self._listener = listener

    @property
    def attachments(self) -> AttachmentPresenter | ThreadDeleteListener:
        """The attachment backend composed in."""
        return self._attachments

    def __repr__(self) -> str:
        return f"StoreWithAttachments({self._store!r}, {self._attachments!r})"

    # Presenting

    async def _present(self, attachment: Attachment, context: TContext) -> Attachment:
        if self._presenter is None:
            return attachment
        return await self._presenter.present_attachment(attachment, context)

    async def _present_item(self, item: ThreadItem, context: TContext) -> ThreadItem:
        if self._presenter is None:
            return item
        if isinstance(item, GeneratedImageItem):
            return await self._present_generated_image(item, context)
        if not isinstance(item, UserMessageItem) or not item.attachments:
            return item
        presented = [await self._present(a, context) for a in item.attachments]
        return item.model_copy(update={"attachments": presented})

    async def _present_generated_image(
        self, item: GeneratedImageItem, context: TContext
    ) -> GeneratedImageItem:
        """A fresh URL for an image stored as an attachment (`generated_image_url`)."""
        attachment_id = generated_image_attachment_id(item.image.url) if item.image else None
        if item.image is None or attachment_id is None:
            return item
        try:
            attachment = await self._store.load_attachment(attachment_id, context)
        except NotFoundError:
            return item
        url = generated_image_url(await self._present(attachment, context))
        if url == item.image.url:
            return item
        return item.model_copy(update={"image": item.image.model_copy(update={"url": url})})

    # What the composition changes

    async def delete_thread(self, thread_id: str, context: TContext) -> None:
        """Let the backend act first (the opt-in cascade), then delete the thread."""
        if self._listener is not None:
            await self._listener.before_thread_delete(thread_id, context)
        await self._store.delete_thread(thread_id, context)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: TContext
    ) -> Page[ThreadItem]:
        page = await self._store.load_thread_items(thread_id, after, limit, order, context)
        if self._presenter is None:
            return page
        data = [await self._present_item(item, context) for item in page.data]
        return page.model_copy(update={"data": data})

    async def load_item(self, thread_id: str, item_id: str, context: TContext) -> ThreadItem:
        item = await self._store.load_item(thread_id, item_id, context)
        return await self._present_item(item, context)

    async def load_attachment(self, attachment_id: str, context: TContext) -> Attachment:
        attachment = await self._store.load_attachment(attachment_id, context)
        return await self._present(attachment, context)
