"""Generated images out of the database: stored through the attachment backend, fetched by
their owner, re-signed on load, sent to the model as bytes, erased with the thread or owner."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, set_tracing_disabled
from chatkit.server import ChatKitServer
from chatkit.types import (
    GeneratedImageItem,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)

from chatkit_kit.agents import agent_turn
from chatkit_kit.asgi import chatkit_app
from chatkit_kit.attachments import (
    DirectUploadAttachmentStore,
    LocalBlobStorage,
    S3AttachmentStore,
    StoreWithAttachments,
)
from chatkit_kit.attachments.generated import generated_image_attachment_id
from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import ChatKitTestClient, GeneratedImage, ScriptedOpenAI, Text
from tests.fixtures.context import Ctx

from ._app import alice

set_tracing_disabled(True)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x07" * 20_000
PREVIEW = b"\x89PNG\r\n\x1a\n" + b"\x01" * 8


class ImageServer(ChatKitServer[Ctx]):
    def __init__(self, store: Any, backend: Any, llm: ScriptedOpenAI, mode: str) -> None:
        super().__init__(StoreWithAttachments(store, backend), backend)
        self.backend = backend
        self.agent = Agent(name="Painter", model=llm.model)
        self.mode = mode

    def respond(
        self, thread: ThreadMetadata, item: UserMessageItem | None, context: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        return agent_turn(
            self.agent,
            thread,
            item,
            context,
            store=self.store,
            attachments=self.backend,
            generated_images=self.mode,  # type: ignore[arg-type]
        )


def script() -> list[Any]:
    return [[GeneratedImage(PNG, partial=(PREVIEW,)), Text("Here it is.")], "A grey square."]


async def test_direct_uploads_keep_the_image_out_of_the_row(tmp_path: Path) -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    blobs = tmp_path / "blobs"
    backend = DirectUploadAttachmentStore(
        store,
        LocalBlobStorage(blobs),
        base_url="http://chatkit-test-client/chatkit",
        preview_signing_key=b"k" * 32,
    )
    llm = ScriptedOpenAI(script(), api="responses")
    app = chatkit_app(ImageServer(store, backend, llm, "attachments"), alice, uploads=backend)
    ctx = Ctx("alice")
    async with ChatKitTestClient(app) as chat:
        turn = await chat.create_thread("Paint a square")
        thread_id = turn.thread_id
        [image_item] = [i for i in turn.done_items if isinstance(i, GeneratedImageItem)]
        assert image_item.image is not None
        url = image_item.image.url
        assert not url.startswith("data:") and "token=" in url
        # The partial preview was only streamed, as a data: URL.
        partial = [
            e.update.image.url
            for e in turn.events
            if isinstance(e, ThreadItemUpdatedEvent) and e.update.type == "generated_image.updated"
        ]
        assert partial == [f"data:image/png;base64,{base64.b64encode(PREVIEW).decode()}"]

        # The stored row holds a short URL, not the image.
        stored = await store.load_item(thread_id, image_item.id, ctx)
        assert isinstance(stored, GeneratedImageItem) and stored.image is not None
        assert len(stored.image.url) < 1000 < len(PNG) and "base64" not in stored.image.url
        # The owner fetches the bytes at that URL (signed: no credentials needed).
        assert await chat.download(url) == PNG

        # Turn two: the model gets the image bytes, not a URL it could not fetch.
        await chat.add_user_message(thread_id, "Describe it")
        image_parts = [
            part
            for entry in llm.inputs[1]
            if entry.get("role") == "user"
            for part in entry["content"]
            if part["type"] == "input_image"
        ]
        assert [p["image_url"] for p in image_parts] == [
            f"data:image/png;base64,{base64.b64encode(PNG).decode()}"
        ]

        # Deleting the thread removes the bytes (without delete_with_thread too).
        assert [p for p in blobs.rglob("*") if p.is_file()]
        await chat.delete_thread(thread_id)
    assert [p for p in blobs.rglob("*") if p.is_file()] == []


async def test_s3_urls_are_presigned_again_on_load_and_erase_owner_removes_the_bytes(
    s3_client: Any, bucket: str
) -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    backend = S3AttachmentStore(store, client=s3_client, bucket=bucket, preview_expires_in=60)
    llm = ScriptedOpenAI(script()[:1], api="responses")
    app = chatkit_app(ImageServer(store, backend, llm, "attachments"), alice)
    async with ChatKitTestClient(app) as chat:
        turn = await chat.create_thread("Paint a square")
        [image_item] = [i for i in turn.done_items if isinstance(i, GeneratedImageItem)]
        assert image_item.image is not None
        first_url = image_item.image.url
        assert "X-Amz-Signature=" in first_url
        assert await chat.download(first_url) == PNG
        attachment_id = generated_image_attachment_id(first_url)
        assert attachment_id is not None
        loaded = [
            i for i in await chat.all_items(turn.thread_id) if isinstance(i, GeneratedImageItem)
        ]
        assert loaded[0].image is not None
        assert generated_image_attachment_id(loaded[0].image.url) == attachment_id
        assert await chat.download(loaded[0].image.url) == PNG
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 1
    await store.erase_owner("alice", attachments=backend)
    assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


async def test_inline_stays_the_default_and_bad_settings_are_refused(tmp_path: Path) -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    backend = DirectUploadAttachmentStore(
        store, LocalBlobStorage(tmp_path), base_url="http://chatkit-test-client/chatkit"
    )
    llm = ScriptedOpenAI(script()[:1], api="responses")
    async with ChatKitTestClient(
        chatkit_app(ImageServer(store, backend, llm, "inline"), alice)
    ) as chat:
        turn = await chat.create_thread("Paint")
    [image_item] = [i for i in turn.done_items if isinstance(i, GeneratedImageItem)]
    assert image_item.image is not None and image_item.image.url.startswith("data:image/png")

    thread = ThreadMetadata(id="thr_x", created_at=image_item.created_at)
    with pytest.raises(ValueError, match="needs attachments="):
        async for _ in agent_turn(
            Agent(name="a", model=llm.model),
            thread,
            None,
            Ctx("alice"),
            store=store,
            history=[],
            generated_images="attachments",
        ):
            pass
    with pytest.raises(ValueError, match="not a PNG, JPEG, GIF or WebP"):
        await backend.save_generated_image(b"GIF", thread_id="thr_x", context=Ctx("alice"))
