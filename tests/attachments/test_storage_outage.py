"""An S3 outage (the endpoint on a closed loopback port) raises AttachmentStorageUnavailableError
from every public method that touches S3, the routes answer 503 with Retry-After, and a failed
orphan sweep leaves nothing that nothing points to."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from starlette.requests import Request

from chatkit_kit.attachments import (
    DirectUploadAttachmentStore,
    S3AttachmentStore,
    S3BlobStorage,
    StoreWithAttachments,
)
from chatkit_kit.errors import (
    AttachmentStorageError,
    AttachmentStorageUnavailableError,
    ChatKitKitError,
)
from chatkit_kit.stores import MemoryStore
from tests.fixtures.context import ALICE, Ctx
from tests.fixtures.s3 import object_keys

DRIVER_MODULES = ("botocore", "boto3", "urllib3", "s3transfer")
FAR_FUTURE = datetime(2999, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, then closed)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    yield port


@pytest.fixture
def down_client(closed_port: int) -> Any:
    """A boto3 S3 client whose endpoint refuses connections, with no retries."""
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{closed_port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            signature_version="s3v4",
            connect_timeout=2,
            read_timeout=2,
            retries={"max_attempts": 1, "mode": "standard"},
        ),
    )


def assert_unavailable(error: BaseException) -> None:
    assert isinstance(error, AttachmentStorageUnavailableError), repr(error)
    assert isinstance(error, ChatKitKitError) and isinstance(error, ConnectionError)
    assert error.retryable and error.__cause__ is not None
    assert not type(error).__module__.startswith(DRIVER_MODULES)


async def _two_phase_upload(backend: S3AttachmentStore[Ctx], s3_client: Any, body: bytes) -> str:
    attachment = await backend.create_attachment(_params("a.txt", len(body), "text/plain"), ALICE)
    key = backend._object_key(attachment, backend.owner_key(ALICE))
    assert key is not None
    blobs = backend.blobs
    assert isinstance(blobs, S3BlobStorage)
    s3_client.put_object(Bucket=blobs.bucket, Key=key, Body=body, ContentType="text/plain")
    await backend.store.save_attachment(attachment, ALICE)
    return attachment.id


def _params(name: str, size: int, mime: str) -> Any:
    from chatkit.types import AttachmentCreateParams

    return AttachmentCreateParams(name=name, size=size, mime_type=mime)


async def test_every_s3_call_raises_storage_unavailable(
    s3_client: Any, bucket: str, down_client: Any
) -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    backend: S3AttachmentStore[Ctx] = S3AttachmentStore(store, client=s3_client, bucket=bucket)
    chat_store = StoreWithAttachments(store, backend)
    attachment_id = await _two_phase_upload(backend, s3_client, b"hello")
    orphan_id = await _two_phase_upload(backend, s3_client, b"orphan")
    attachment = await chat_store.load_attachment(attachment_id, ALICE)

    blobs = backend.blobs
    assert isinstance(blobs, S3BlobStorage)
    blobs.client = down_client  # the outage
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "read_attachment_bytes": lambda: backend.read_attachment_bytes(attachment, ALICE),
        "verify_attachment": lambda: backend.verify_attachment(attachment, ALICE),
        "delete_attachment": lambda: backend.delete_attachment(attachment_id, ALICE),
        "sweep_orphans": lambda: backend.sweep_orphans(timedelta(0)),
        "blobs.get": lambda: backend.blobs.get("k/x"),
        "blobs.stat": lambda: backend.blobs.stat("k/x"),
        "blobs.delete": lambda: backend.blobs.delete("k/x"),
        "blobs.put": lambda: backend.blobs.put("k/x", b"x", content_type="text/plain"),
    }
    for name, run in calls.items():
        with pytest.raises(AttachmentStorageError) as raised:
            await run()
        assert_unavailable(raised.value)
        assert "retry later" in str(raised.value), name

    async def first_chunk() -> bytes:
        async for chunk in backend.blobs.stream("k/x"):
            return chunk
        return b""

    with pytest.raises(AttachmentStorageUnavailableError):
        await first_chunk()

    # Nothing changed: both rows and both objects are still there.
    blobs.client = s3_client
    assert (await chat_store.load_attachment(attachment_id, ALICE)).id == attachment_id
    assert (await store.load_attachment(orphan_id, ALICE)).id == orphan_id
    assert len(object_keys(s3_client, bucket)) == 2
    # Storage back: the sweep deletes the orphans' bytes and rows (both never sent).
    assert await backend.sweep_orphans(timedelta(0)) == 2
    assert object_keys(s3_client, bucket) == []


async def test_sweep_deletes_bytes_before_rows(s3_client: Any, bucket: str) -> None:
    """A sweep whose object delete fails keeps the row, so the next sweep finds the object."""
    store: MemoryStore[Ctx] = MemoryStore()
    backend: S3AttachmentStore[Ctx] = S3AttachmentStore(store, client=s3_client, bucket=bucket)
    orphan_id = await _two_phase_upload(backend, s3_client, b"orphan")
    real_delete = backend.blobs.delete
    failures = 0

    async def failing_delete(key: str) -> None:
        nonlocal failures
        failures += 1
        raise AttachmentStorageUnavailableError("S3 is down")

    backend.blobs.delete = failing_delete  # type: ignore[method-assign]
    with pytest.raises(AttachmentStorageUnavailableError):
        await backend.sweep_orphans(timedelta(0))
    assert failures == 1
    assert (await store.load_attachment(orphan_id, ALICE)).id == orphan_id
    backend.blobs.delete = real_delete  # type: ignore[method-assign]
    assert await backend.sweep_orphans(timedelta(0)) == 1
    assert object_keys(s3_client, bucket) == []


async def _context(request: Request) -> Ctx:
    return ALICE


@pytest.fixture
async def direct_env(
    serve: Any, down_client: Any, bucket: str
) -> AsyncIterator[tuple[httpx.AsyncClient, DirectUploadAttachmentStore[Ctx]]]:
    holder: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await holder["app"](scope, receive, send)

    live = await serve(app)
    backend: DirectUploadAttachmentStore[Ctx] = DirectUploadAttachmentStore(
        MemoryStore(), S3BlobStorage(down_client, bucket), base_url=live.base_url
    )
    holder["app"] = backend.asgi_app(_context)
    async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as client:
        yield client, backend


async def test_direct_upload_and_download_during_an_outage_are_503(
    direct_env: tuple[httpx.AsyncClient, DirectUploadAttachmentStore[Ctx]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, backend = direct_env
    response = await client.post(
        "/attachments/upload", files={"file": ("a.txt", b"abc", "text/plain")}
    )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "service_unavailable"
    assert "127.0.0.1" not in response.text  # no internals in the body
    assert await backend.store.list_unattached_attachments(FAR_FUTURE) == []  # type: ignore[attr-defined]
    with pytest.raises(AttachmentStorageUnavailableError):
        await backend.upload(
            name="a.txt", mime_type="text/plain", data=_chunks(b"abc"), context=ALICE
        )
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_refused_calls_are_storage_errors_not_outages(s3_client: Any) -> None:
    blobs = S3BlobStorage(s3_client, "chatkit-kit-no-such-bucket")
    with pytest.raises(AttachmentStorageError) as raised:
        await blobs.put("k/x", b"x", content_type="text/plain")
    assert not isinstance(raised.value, AttachmentStorageUnavailableError)
    assert not raised.value.retryable
