"""MemoryStore's AttachmentIndex (the optional store API attachment backends use)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from chatkit.store import NotFoundError
from chatkit.types import FileAttachment, ThreadMetadata

from chatkit_kit.stores import AttachmentIndex, MemoryStore, ThreadDeleteListener

FUTURE = datetime(2999, 1, 1, tzinfo=timezone.utc)


@dataclass
class Ctx:
    user_id: str


A, B = Ctx("a"), Ctx("b")


def attachment(attachment_id: str, thread_id: str | None = None) -> FileAttachment:
    return FileAttachment(
        id=attachment_id, name="f.txt", mime_type="text/plain", thread_id=thread_id
    )


async def test_memory_store_is_an_attachment_index() -> None:
    assert isinstance(MemoryStore(), AttachmentIndex)


async def test_list_thread_attachments_is_owner_scoped() -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    await store.save_attachment(attachment("x", "thr_1"), A)
    await store.save_attachment(attachment("y", "thr_2"), A)
    await store.save_attachment(attachment("z", "thr_1"), B)
    assert [a.id for a in await store.list_thread_attachments("thr_1", A)] == ["x"]
    assert [a.id for a in await store.list_thread_attachments("thr_1", B)] == ["z"]
    assert await store.list_thread_attachments("thr_9", A) == []


async def test_list_unattached_is_oldest_first_across_owners_and_limited() -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    await store.save_attachment(attachment("first"), A)
    await store.save_attachment(attachment("sent", "thr_1"), A)
    await store.save_attachment(attachment("second"), B)
    await store.save_attachment(attachment("first"), A)  # re-save keeps the first saved time
    rows = await store.list_unattached_attachments(FUTURE)
    assert [(r.owner, r.attachment.id) for r in rows] == [("a", "first"), ("b", "second")]
    assert rows[0].saved_at <= rows[1].saved_at
    assert rows[0].saved_at.tzinfo is not None
    assert len(await store.list_unattached_attachments(FUTURE, limit=1)) == 1
    past = datetime.now(timezone.utc) - timedelta(hours=1)
    assert await store.list_unattached_attachments(past) == []


async def test_delete_orphan_attachment_only_while_unattached() -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    await store.save_attachment(attachment("x"), A)
    await store.save_attachment(attachment("x", "thr_1"), A)  # sent meanwhile
    assert await store.delete_orphan_attachment("a", "x") is False
    assert (await store.load_attachment("x", A)).thread_id == "thr_1"
    await store.save_attachment(attachment("y"), A)
    assert await store.delete_orphan_attachment("b", "y") is False
    assert await store.delete_orphan_attachment("a", "y") is True
    with pytest.raises(NotFoundError):
        await store.load_attachment("y", A)
    assert await store.delete_orphan_attachment("a", "y") is False


class Listener:
    def __init__(self, store: MemoryStore[Ctx], fail: bool = False) -> None:
        self.store = store
        self.fail = fail
        self.calls: list[tuple[str, Any]] = []

    async def present_attachment(self, attachment: Any, context: Any) -> Any:
        return attachment

    async def before_thread_delete(self, thread_id: str, context: Any) -> None:
        # The thread is still there when the hook runs.
        await self.store.load_thread(thread_id, context)
        self.calls.append((thread_id, context))
        if self.fail:
            raise RuntimeError("cascade failed")


async def test_delete_thread_calls_the_presenter_hook_first() -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    listener = Listener(store)
    assert isinstance(listener, ThreadDeleteListener)
    store.attachment_presenter = listener
    await store.save_thread(ThreadMetadata(id="thr_1", created_at=datetime.now()), A)
    await store.delete_thread("thr_1", A)
    assert listener.calls == [("thr_1", A)]
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_1", A)


async def test_failing_hook_keeps_the_thread() -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    store.attachment_presenter = Listener(store, fail=True)
    await store.save_thread(ThreadMetadata(id="thr_1", created_at=datetime.now()), A)
    with pytest.raises(RuntimeError, match="cascade failed"):
        await store.delete_thread("thr_1", A)
    assert (await store.load_thread("thr_1", A)).id == "thr_1"
