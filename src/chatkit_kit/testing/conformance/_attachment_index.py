"""`AttachmentIndexConformance`: the contract of chatkit-kit's `AttachmentIndex` store extension.

Attachment backends (S3 two-phase, direct upload) rely on it for `delete_with_thread=True` and
orphan sweeps. Subclass it like `StoreConformance`::

    class TestMyStoreIndex(AttachmentIndexConformance):
        async def make_store(self):
            return MyStore(...)

The store must implement `chatkit_kit.stores.AttachmentIndex`. The thread-delete hook rule
composes it with an attachment backend (`StoreWithAttachments`), as apps do.
Other stores' and other tests' rows may share the database: the suite only looks at its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from chatkit.store import NotFoundError
from chatkit.types import Attachment, FileAttachment, ThreadMetadata

from ...attachments import StoreWithAttachments
from ...stores._index import AttachmentIndex
from ._capabilities import ATTACHMENTS
from ._harness import Harness, SuiteBase, rule
from ._values import raises_not_found

_FUTURE = datetime(2999, 1, 1, tzinfo=timezone.utc)
_PAST = datetime(2000, 1, 1, tzinfo=timezone.utc)


def _attachment(attachment_id: str, thread_id: str | None = None) -> FileAttachment:
    return FileAttachment(
        id=attachment_id, name="f.txt", mime_type="text/plain", thread_id=thread_id
    )


def _index(h: Harness) -> Any:
    h.check(
        isinstance(h.recorder.wrapped, AttachmentIndex),
        f"{type(h.recorder.wrapped).__name__} does not implement AttachmentIndex "
        "(list_thread_attachments, list_unattached_attachments, delete_orphan_attachment)",
    )
    return h.store


@dataclass
class _Listener:
    """An attachment backend that listens for thread deletes."""

    h: Harness
    fail: bool = False
    calls: list[tuple[str, Any]] = field(default_factory=list)
    thread_loaded: list[bool] = field(default_factory=list)

    async def present_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        return attachment

    async def before_thread_delete(self, thread_id: str, context: Any) -> None:
        try:
            await self.h.store.load_thread(thread_id, context)
            self.thread_loaded.append(True)
        except NotFoundError:
            self.thread_loaded.append(False)
        self.calls.append((thread_id, context))
        if self.fail:
            raise RuntimeError("cascade failed")


class AttachmentIndexConformance(SuiteBase):
    """The AttachmentIndex contract: thread attachments, orphan listing, conditional delete,
    and the delete-with-thread hook. Configure it like `StoreConformance`."""

    @rule(
        "index-thread-attachments",
        "list_thread_attachments returns the owner's attachments of that thread, and only those",
        protects="delete_with_thread=True deletes the files of a deleted thread, no one else's",
        tier="attachment-index",
        needs=(ATTACHMENTS,),
    )
    async def test_index_thread_attachments(self, h: Harness) -> None:
        index = _index(h)
        alice, bob = h.context(), h.context()
        await index.save_attachment(_attachment("x", "thr_1"), alice)
        await index.save_attachment(_attachment("y", "thr_2"), alice)
        await index.save_attachment(_attachment("z", "thr_1"), bob)
        await index.save_attachment(_attachment("w"), alice)
        got = [a.id for a in await index.list_thread_attachments("thr_1", alice)]
        h.check(got == ["x"], f"alice's thr_1 attachments: {got}")
        got = [a.id for a in await index.list_thread_attachments("thr_1", bob)]
        h.check(got == ["z"], f"bob's thr_1 attachments: {got}")
        h.check(await index.list_thread_attachments("thr_9", alice) == [], "unknown thread listed")

    @rule(
        "index-orphans",
        "list_unattached_attachments lists attachments of every owner without a thread, saved "
        "before the cutoff, up to the limit; once sent (saved with a thread) one is no orphan",
        protects="sweep_orphans deletes uploads that were never sent",
        tier="attachment-index",
        needs=(ATTACHMENTS,),
    )
    async def test_index_orphans(self, h: Harness) -> None:
        index = _index(h)
        alice, bob = h.context(), h.context()
        tag = uuid.uuid4().hex[:8]
        first, second, sent = f"first-{tag}", f"second-{tag}", f"sent-{tag}"
        before = datetime.now(timezone.utc)
        await index.save_attachment(_attachment(first), alice)
        await index.save_attachment(_attachment(sent, "thr_1"), alice)
        await index.save_attachment(_attachment(second), bob)

        async def ours(cutoff: datetime, limit: int = 1000) -> list[Any]:
            rows = await index.list_unattached_attachments(cutoff, limit)
            return [row for row in rows if row.attachment.id.endswith(tag)]

        found = await ours(_FUTURE)
        h.check(
            sorted(row.attachment.id for row in found) == [first, second],
            f"orphans listed: {sorted(row.attachment.id for row in found)}",
        )
        owners = {row.attachment.id: row.owner for row in found}
        h.check(owners[first] != owners[second], f"two owners share the key {owners[first]!r}")
        for row in found:
            h.check(
                row.saved_at.tzinfo is not None
                and before - timedelta(minutes=5)
                < row.saved_at
                <= datetime.now(timezone.utc) + timedelta(seconds=2),
                f"saved_at {row.saved_at!r} is not an aware time of the save",
            )
        h.check(await ours(_PAST) == [], "orphans saved after the cutoff were listed")
        limited = await index.list_unattached_attachments(_FUTURE, 1)
        h.check(len(limited) == 1, f"limit=1 gave {len(limited)} rows")
        await index.save_attachment(_attachment(first, "thr_2"), alice)
        left = [row.attachment.id for row in await ours(_FUTURE)]
        h.check(left == [second], f"after sending {first}: orphans {left}")

    @rule(
        "index-orphan-delete",
        "delete_orphan_attachment deletes only an attachment of that owner that still has no "
        "thread, and says whether it did",
        protects="a sweep racing a send must not delete the file just sent",
        tier="attachment-index",
        needs=(ATTACHMENTS,),
    )
    async def test_index_orphan_delete(self, h: Harness) -> None:
        index = _index(h)
        alice, bob = h.context(), h.context()
        tag = uuid.uuid4().hex[:8]
        orphan, sent = f"orphan-{tag}", f"sent-{tag}"
        await index.save_attachment(_attachment(orphan), alice)
        await index.save_attachment(_attachment(sent, "thr_1"), alice)
        await index.save_attachment(_attachment("other"), bob)
        rows = await index.list_unattached_attachments(_FUTURE, 1000)
        owner = next((r.owner for r in rows if r.attachment.id == orphan), None)
        bob_owner = next(
            (r.owner for r in rows if r.attachment.id == "other" and r.owner != owner), None
        )
        h.check(owner is not None and bob_owner is not None, "saved orphans are not listed")
        assert owner is not None and bob_owner is not None
        h.check(
            await index.delete_orphan_attachment(bob_owner, orphan) is False,
            "deleted an orphan under another owner's key",
        )
        h.check(
            await index.delete_orphan_attachment(owner, sent) is False,
            "deleted an attachment that has a thread",
        )
        h.check(await index.delete_orphan_attachment(owner, orphan) is True, "returned False")
        h.check(
            await index.delete_orphan_attachment(owner, orphan) is False,
            "a second delete returned True",
        )
        h.check(
            await raises_not_found(index.load_attachment(orphan, alice)) is not None,
            "the deleted orphan still loads",
        )
        h.check((await index.load_attachment(sent, alice)).id == sent, "the sent one is gone")

    @rule(
        "index-delete-thread-hook",
        "composed with an attachment backend (StoreWithAttachments), delete_thread calls the "
        "backend's before_thread_delete first (the thread still loads); when it raises, the "
        "thread is kept",
        protects="delete_with_thread=True deletes files before their thread, and never loses "
        "track of them",
        tier="attachment-index",
        needs=(ATTACHMENTS,),
    )
    async def test_index_delete_thread_hook(self, h: Harness) -> None:
        store = h.recorder.wrapped
        ctx = h.context()
        listener = _Listener(h)
        composed = StoreWithAttachments(store, listener)
        await h.store.save_thread(ThreadMetadata(id="thr_1", created_at=datetime.now()), ctx)
        await composed.delete_thread("thr_1", ctx)
        h.check(listener.calls == [("thr_1", ctx)], f"hook calls: {listener.calls}")
        h.check(listener.thread_loaded == [True], "the hook ran after the thread was deleted")
        h.check(
            await raises_not_found(h.store.load_thread("thr_1", ctx)) is not None,
            "the thread survived delete_thread",
        )
        failing = StoreWithAttachments(store, _Listener(h, fail=True))
        await h.store.save_thread(ThreadMetadata(id="thr_2", created_at=datetime.now()), ctx)
        try:
            await failing.delete_thread("thr_2", ctx)
        except RuntimeError:
            pass
        else:
            h.fail("delete_thread swallowed the hook's error")
        h.check((await h.store.load_thread("thr_2", ctx)).id == "thr_2", "the thread was deleted")
