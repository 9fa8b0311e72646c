"""`StoreWithAttachments`: the one composition step of a store and an attachment backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    Attachment,
    FileAttachment,
    InferenceOptions,
    Page,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)

from chatkit_kit.attachments import (
    AttachmentPresenter,
    DirectUploadAttachmentStore,
    LocalBlobStorage,
    StoreWithAttachments,
    ThreadDeleteListener,
)
from chatkit_kit.stores import ForwardingStore, MemoryStore
from tests.fixtures.context import ALICE, MALLORY, Ctx
from tests.fixtures.servers import EchoServer, call, user_message

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def files_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


class AuditedStore(MemoryStore[Ctx]):
    """A user's subclass of our store: its own ids, an audit log, and a rule of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def generate_thread_id(self, context: Ctx) -> str:
        return f"thr_audited_{uuid.uuid4().hex}"

    async def save_attachment(self, attachment: Attachment, context: Ctx) -> None:
        self.calls.append(f"save_attachment {attachment.name}")
        await super().save_attachment(attachment, context)

    async def load_attachment(self, attachment_id: str, context: Ctx) -> Attachment:
        self.calls.append("load_attachment")
        attachment = await super().load_attachment(attachment_id, context)
        if attachment.name.startswith("secret"):  # the subclass's own access rule
            raise NotFoundError(f"Attachment {attachment_id} not found")
        return attachment

    async def delete_attachment(self, attachment_id: str, context: Ctx) -> None:
        self.calls.append("delete_attachment")
        await super().delete_attachment(attachment_id, context)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Ctx
    ) -> Page[ThreadItem]:
        self.calls.append("load_thread_items")
        return await super().load_thread_items(thread_id, after, limit, order, context)

    async def delete_thread(self, thread_id: str, context: Ctx) -> None:
        self.calls.append("delete_thread")
        await super().delete_thread(thread_id, context)


async def test_a_subclass_keeps_its_overrides_when_composed(tmp_path: Path) -> None:
    store = AuditedStore()
    backend: DirectUploadAttachmentStore[Ctx] = DirectUploadAttachmentStore(
        store,
        LocalBlobStorage(tmp_path),
        base_url="http://api.test/chatkit",
        delete_with_thread=True,
    )
    chat_store = StoreWithAttachments(store, backend)
    server = EchoServer(chat_store, backend)

    image = await backend.upload(
        name="cat.png", mime_type="image/png", data=chunks(PNG), context=ALICE
    )
    assert store.calls == ["save_attachment cat.png"]

    events = await call(
        server,
        {"type": "threads.create", "params": {"input": user_message("look", [image.id])}},
        ALICE,
    )
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    assert thread_id.startswith("thr_audited_")  # the subclass's generate_thread_id
    assert "load_attachment" in store.calls

    store.calls.clear()
    listed = await call(server, {"type": "items.list", "params": {"thread_id": thread_id}}, ALICE)
    assert store.calls == ["load_thread_items"]
    assert listed["data"][0]["attachments"][0]["preview_url"] == backend.download_url(image.id)

    # The backend reads the store through the subclass too, so its own rule holds for the bytes.
    secret = await backend.upload(
        name="secret.txt", mime_type="text/plain", data=chunks(b"s3cret"), context=ALICE
    )
    with pytest.raises(NotFoundError):
        await chat_store.load_attachment(secret.id, ALICE)
    with pytest.raises(NotFoundError):
        await backend.read_attachment_bytes(secret, ALICE)

    # The cascade runs before the subclass's delete_thread, through its delete_attachment.
    store.calls.clear()
    await call(server, {"type": "threads.delete", "params": {"thread_id": thread_id}}, ALICE)
    assert store.calls == ["delete_attachment", "delete_thread"]
    with pytest.raises(NotFoundError):
        await store.load_thread(thread_id, ALICE)
    with pytest.raises(NotFoundError):
        await store.load_attachment(image.id, ALICE)
    assert len(files_in(tmp_path)) == 1  # only the never-sent secret.txt is left


async def test_the_store_returns_rows_as_saved_and_the_composed_store_presents_them(
    tmp_path: Path,
) -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    old = DirectUploadAttachmentStore(store, LocalBlobStorage(tmp_path), base_url="http://old/ck")
    image = await old.upload(name="a.png", mime_type="image/png", data=chunks(PNG), context=ALICE)
    moved = DirectUploadAttachmentStore(store, LocalBlobStorage(tmp_path), base_url="http://new/ck")
    chat_store = StoreWithAttachments(store, moved)

    raw = await store.load_attachment(image.id, ALICE)
    presented = await chat_store.load_attachment(image.id, ALICE)
    assert str(raw.preview_url).startswith("http://old/ck/")  # type: ignore[union-attr]
    assert str(presented.preview_url) == moved.download_url(image.id)  # type: ignore[union-attr]
    # The backend's own loads see the row as saved, without any switch to turn presenting off.
    assert await moved.read_attachment_bytes(presented, ALICE) == PNG


class Renamer:
    """A presenter of our own: shows every attachment under another name."""

    def __init__(self, store: Store[Ctx]) -> None:
        self.store = store
        self.presented: list[str] = []

    async def present_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        self.presented.append(attachment.id)
        return attachment.model_copy(update={"name": f"shown-{attachment.name}"})


class CachingStore(MemoryStore[Ctx]):
    """A store that hands out the same item objects every time (as some caches do)."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[str, ThreadItem] = {}

    async def load_item(self, thread_id: str, item_id: str, context: Ctx) -> ThreadItem:
        if item_id not in self.cache:
            self.cache[item_id] = await super().load_item(thread_id, item_id, context)
        return self.cache[item_id]


def message(item_id: str, attachments: list[Attachment]) -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id="thr_1",
        created_at=datetime.now(),
        content=[UserMessageTextContent(text="hi")],
        attachments=attachments,
        inference_options=InferenceOptions(),
    )


async def test_every_way_out_presents_and_nothing_is_mutated() -> None:
    store = CachingStore()
    renamer = Renamer(store)
    chat_store = StoreWithAttachments(store, renamer)
    file = FileAttachment(id="atc_1", name="f.txt", mime_type="text/plain", thread_id="thr_1")
    await chat_store.save_thread(ThreadMetadata(id="thr_1", created_at=datetime.now()), ALICE)
    await chat_store.save_attachment(file, ALICE)
    await chat_store.add_thread_item("thr_1", message("msg_1", [file]), ALICE)

    assert (await chat_store.load_attachment("atc_1", ALICE)).name == "shown-f.txt"
    item = await chat_store.load_item("thr_1", "msg_1", ALICE)
    assert isinstance(item, UserMessageItem) and item.attachments[0].name == "shown-f.txt"
    page = await chat_store.load_thread_items("thr_1", None, 10, "asc", ALICE)
    first = page.data[0]
    assert isinstance(first, UserMessageItem) and first.attachments[0].name == "shown-f.txt"
    assert renamer.presented == ["atc_1", "atc_1", "atc_1"]

    cached = store.cache["msg_1"]
    assert isinstance(cached, UserMessageItem) and cached.attachments[0].name == "f.txt"
    assert (await store.load_attachment("atc_1", ALICE)).name == "f.txt"
    with pytest.raises(NotFoundError):
        await chat_store.load_attachment("atc_1", MALLORY)


class DeleteRecorder:
    """A thread-delete listener of our own, without presenting."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    async def before_thread_delete(self, thread_id: str, context: Any) -> None:
        self.deleted.append(thread_id)


async def test_a_listener_without_presenting_and_a_presenter_without_listening() -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    recorder = DeleteRecorder()
    assert isinstance(recorder, ThreadDeleteListener)
    assert not isinstance(recorder, AttachmentPresenter)
    listening = StoreWithAttachments(store, recorder)
    file = FileAttachment(id="atc_1", name="f.txt", mime_type="text/plain")
    await store.save_attachment(file, ALICE)
    assert (await listening.load_attachment("atc_1", ALICE)).name == "f.txt"
    await store.save_thread(ThreadMetadata(id="thr_1", created_at=datetime.now()), ALICE)
    await listening.delete_thread("thr_1", ALICE)
    assert recorder.deleted == ["thr_1"]

    presenting = StoreWithAttachments(store, Renamer(store))
    await store.save_thread(ThreadMetadata(id="thr_2", created_at=datetime.now()), ALICE)
    await presenting.delete_thread("thr_2", ALICE)
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_2", ALICE)


async def test_wrong_compositions_are_refused(tmp_path: Path) -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    other: MemoryStore[Ctx] = MemoryStore()
    backend = DirectUploadAttachmentStore(store, LocalBlobStorage(tmp_path), base_url="http://x")
    chat_store = StoreWithAttachments(store, backend)
    assert chat_store.store is store and chat_store.attachments is backend

    with pytest.raises(ValueError, match="another store"):
        StoreWithAttachments(other, backend)
    with pytest.raises(TypeError, match="already a StoreWithAttachments"):
        StoreWithAttachments(chat_store, backend)
    with pytest.raises(TypeError, match="pass the store itself"):
        DirectUploadAttachmentStore(chat_store, LocalBlobStorage(tmp_path), base_url="http://x")
    with pytest.raises(TypeError, match="nothing to compose"):
        StoreWithAttachments(store, object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"chatkit\.store\.Store"):
        StoreWithAttachments(object(), backend)  # type: ignore[arg-type]


def test_every_store_method_is_passed_on() -> None:
    """A method left to the `Store` default would skip the user's override of it."""
    public = {name for name in dir(Store) if not name.startswith("_")}
    defaults = {
        name for name in public if getattr(StoreWithAttachments, name) is getattr(Store, name)
    }
    assert defaults == set()
    # Passed on by the forwarding base it builds on, or overridden where presentation happens.
    assert public <= set(vars(ForwardingStore)) | set(vars(StoreWithAttachments))


async def test_calls_reach_the_store_with_their_arguments() -> None:
    class Recording(MemoryStore[Ctx]):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[str, tuple[Any, ...]]] = []

        def generate_item_id(self, item_type: Any, thread: ThreadMetadata, context: Ctx) -> str:
            self.seen.append(("generate_item_id", (item_type, thread.id)))
            return "itm_recorded"

        async def load_threads(
            self, limit: int, after: str | None, order: str, context: Ctx
        ) -> Page[ThreadMetadata]:
            self.seen.append(("load_threads", (limit, after, order)))
            return await super().load_threads(limit, after, order, context)

        async def save_item(self, thread_id: str, item: ThreadItem, context: Ctx) -> None:
            self.seen.append(("save_item", (thread_id, item.id)))
            await super().save_item(thread_id, item, context)

        async def delete_thread_item(self, thread_id: str, item_id: str, context: Ctx) -> None:
            self.seen.append(("delete_thread_item", (thread_id, item_id)))
            await super().delete_thread_item(thread_id, item_id, context)

        async def delete_attachment(self, attachment_id: str, context: Ctx) -> None:
            self.seen.append(("delete_attachment", (attachment_id,)))
            await super().delete_attachment(attachment_id, context)

    store = Recording()
    chat_store = StoreWithAttachments(store, DeleteRecorder())
    thread = ThreadMetadata(id="thr_1", created_at=datetime.now())
    await chat_store.save_thread(thread, ALICE)
    assert chat_store.generate_item_id("message", thread, ALICE) == "itm_recorded"
    assert [t.id for t in (await chat_store.load_threads(5, None, "asc", ALICE)).data] == ["thr_1"]
    await chat_store.save_item("thr_1", message("msg_1", []), ALICE)
    assert (await chat_store.load_item("thr_1", "msg_1", ALICE)).id == "msg_1"
    await chat_store.delete_thread_item("thr_1", "msg_1", ALICE)
    await chat_store.delete_attachment("atc_gone", ALICE)
    assert store.seen == [
        ("generate_item_id", ("message", "thr_1")),
        ("load_threads", (5, None, "asc")),
        ("save_item", ("thr_1", "msg_1")),
        ("delete_thread_item", ("thr_1", "msg_1")),
        ("delete_attachment", ("atc_gone",)),
    ]
    with pytest.raises(NotFoundError):
        await store.load_item("thr_1", "msg_1", ALICE)
    assert "StoreWithAttachments(" in repr(chat_store)
