"""S3 two-phase uploads against moto's S3 server over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlsplit

import boto3
import httpx
import pytest
from chatkit.store import NotFoundError
from chatkit.types import AttachmentCreateParams, FileAttachment, UserMessageItem

from chatkit_kit.attachments import (
    METADATA_KEY,
    AttachmentContentSource,
    AttachmentPolicyError,
    AttachmentTooLargeError,
    AttachmentTypeNotAllowedError,
    AttachmentVerificationError,
    S3AttachmentStore,
    S3BlobStorage,
    StoreWithAttachments,
    UploadPolicy,
)
from chatkit_kit.stores import MemoryStore
from tests.fixtures.context import ALICE, MALLORY, Ctx
from tests.fixtures.s3 import object_keys
from tests.fixtures.servers import EchoServer, call, user_message

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
FAR_FUTURE = datetime(2999, 1, 1, tzinfo=timezone.utc)


def make(s3_client: Any, bucket: str, **options: Any) -> tuple[StoreWithAttachments[Ctx], Any, Any]:
    """The store as ChatKit sees it (composed with the backend), the backend and a server."""
    store: MemoryStore[Ctx] = MemoryStore()
    backend: S3AttachmentStore[Ctx] = S3AttachmentStore(
        store, client=s3_client, bucket=bucket, **options
    )
    chat_store = StoreWithAttachments(store, backend)
    return chat_store, backend, EchoServer(chat_store, backend)


def sigv4_query_signature(method: str, url: str, headers: dict[str, str], secret: str) -> str:
    """Recompute the SigV4 signature of a presigned URL for the given header values.

    moto does not check signatures, so this is how the tests prove which header *values* the
    URL is bound to (AWS documents the algorithm in "Authenticating Requests: Using Query
    Parameters (AWS Signature Version 4)").
    """
    parts = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    signed = dict(params)["X-Amz-SignedHeaders"].split(";")
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(params)
        if k != "X-Amz-Signature"
    )
    all_headers = {"host": parts.netloc, **{k.lower(): v for k, v in headers.items()}}
    canonical_headers = "".join(f"{name}:{all_headers[name].strip()}\n" for name in signed)
    canonical_request = "\n".join(
        [
            method,
            parts.path,
            canonical_query,
            canonical_headers,
            ";".join(signed),
            "UNSIGNED-PAYLOAD",
        ]
    )
    query_values = dict(params)
    date = query_values["X-Amz-Date"]
    scope = query_values["X-Amz-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def object_key(url: str, bucket: str) -> str:
    path = unquote(urlsplit(url).path)
    assert path.startswith(f"/{bucket}/")
    return path[len(bucket) + 2 :]


async def create(server: Any, ctx: Ctx, name: str, size: int, mime: str) -> dict[str, Any]:
    params = {"name": name, "size": size, "mime_type": mime}
    result: dict[str, Any] = await call(
        server, {"type": "attachments.create", "params": params}, ctx
    )
    return result


async def upload(descriptor: dict[str, Any], body: bytes, **override: str) -> httpx.Response:
    """Send the bytes exactly as a browser would: method, URL and headers from the descriptor."""
    headers = {**descriptor["headers"], **override}
    async with httpx.AsyncClient() as client:
        return await client.request(
            descriptor["method"], descriptor["url"], headers=headers, content=body
        )


async def test_create_returns_signed_put_with_bound_type_length_and_short_expiry(
    s3_client: Any, bucket: str
) -> None:
    store, _backend, server = make(s3_client, bucket, upload_expires_in=120, preview_expires_in=600)
    created = await create(server, ALICE, "cat.png", len(PNG), "image/png")

    assert "metadata" not in created
    assert created["type"] == "image"
    descriptor = created["upload_descriptor"]
    assert descriptor["method"] == "PUT"
    assert descriptor["headers"] == {"Content-Type": "image/png"}
    q = query(descriptor["url"])
    assert q["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert q["X-Amz-Expires"] == "120"
    assert q["X-Amz-SignedHeaders"].split(";") == ["content-length", "content-type", "host"]

    # The signature binds the declared length and the type: other values give another signature.
    def signature(length: int, content_type: str) -> str:
        headers = {"Content-Length": str(length), "Content-Type": content_type}
        return sigv4_query_signature("PUT", descriptor["url"], headers, "testing")

    assert signature(len(PNG), "image/png") == q["X-Amz-Signature"]
    assert signature(len(PNG) + 1, "image/png") != q["X-Amz-Signature"]
    assert signature(len(PNG), "text/html") != q["X-Amz-Signature"]
    signed_at = datetime.strptime(q["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    assert abs(signed_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    # The key is ours: owner-scoped by a digest, no user-provided name in it.
    key = object_key(descriptor["url"], bucket)
    owner_digest = hashlib.sha256(b"alice").hexdigest()
    assert key.startswith(f"attachments/{owner_digest}/")
    assert "cat" not in key
    preview = query(created["preview_url"])
    assert preview["X-Amz-Expires"] == "600"
    assert preview["X-Amz-SignedHeaders"] == "host"
    assert object_key(created["preview_url"], bucket) == key
    # ChatKit saved it; the record (never sent to clients) holds the key and declared size.
    stored = await store.load_attachment(created["id"], ALICE)
    record = (stored.metadata or {})[METADATA_KEY]
    assert record["key"] == key
    assert record["size"] == len(PNG)
    assert created["id"].startswith("atc_") and len(created["id"]) == 36


async def test_full_two_phase_flow_through_chatkit_server(s3_client: Any, bucket: str) -> None:
    store, _backend, server = make(s3_client, bucket)
    created = await create(server, ALICE, "cat.png", len(PNG), "image/png")
    attachment_id = created["id"]

    response = await upload(created["upload_descriptor"], PNG)
    assert response.status_code == 200, response.text

    events = await call(
        server,
        {"type": "threads.create", "params": {"input": user_message("look", [attachment_id])}},
        ALICE,
    )
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    done = [e["item"] for e in events if e["type"] == "thread.item.done"]
    sent = done[0]["attachments"][0]
    assert sent["id"] == attachment_id
    assert "upload_descriptor" not in sent
    assert "metadata" not in sent

    # What is persisted, before any presenting: the store itself.
    stored = await store.store.load_attachment(attachment_id, ALICE)
    page = await store.store.load_thread_items(thread_id, None, 10, "asc", ALICE)
    assert stored.thread_id == thread_id
    assert stored.upload_descriptor is None
    item = page.data[0]
    assert isinstance(item, UserMessageItem)
    assert item.attachments[0].upload_descriptor is None
    persisted_preview = str(item.attachments[0].preview_url)  # type: ignore[union-attr]

    await asyncio.sleep(1.1)  # presigned URLs carry a one-second timestamp
    listed = await call(server, {"type": "items.list", "params": {"thread_id": thread_id}}, ALICE)
    listed_attachment = listed["data"][0]["attachments"][0]
    fresh = listed_attachment["preview_url"]
    assert query(fresh)["X-Amz-Date"] > query(persisted_preview)["X-Amz-Date"]
    assert "upload_descriptor" not in listed_attachment
    async with httpx.AsyncClient() as client:
        image = await client.get(fresh)
    assert image.status_code == 200 and image.content == PNG

    assert (
        await call(
            server,
            {"type": "attachments.delete", "params": {"attachment_id": attachment_id}},
            ALICE,
        )
        == {}
    )
    assert object_keys(s3_client, bucket) == []
    with pytest.raises(NotFoundError):
        await store.load_attachment(attachment_id, ALICE)


async def test_file_attachment_bytes_and_download_url(s3_client: Any, bucket: str) -> None:
    store, backend, server = make(s3_client, bucket)
    body = b"hello, model"
    created = await create(server, ALICE, "notes.txt", len(body), "text/plain")
    assert created["type"] == "file" and "preview_url" not in created
    assert (await upload(created["upload_descriptor"], body)).status_code == 200
    attachment = await store.load_attachment(created["id"], ALICE)
    assert isinstance(attachment, FileAttachment)
    assert attachment.upload_descriptor is None  # the presenter saw the upload complete

    assert isinstance(backend, AttachmentContentSource)
    assert await backend.read_attachment_bytes(attachment, ALICE) == body
    verified = await backend.verify_attachment(attachment, ALICE)
    assert verified.upload_descriptor is None
    url = await backend.attachment_download_url(attachment, ALICE, expires_in=60)
    assert url is not None and query(url)["X-Amz-Expires"] == "60"
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).content == body


@pytest.mark.parametrize(
    ("name", "size", "mime", "error", "message"),
    [
        ("big.pdf", 10_001, "application/pdf", AttachmentTooLargeError, "limit of 10000 bytes"),
        ("page.html", 10, "text/html", AttachmentTypeNotAllowedError, "'text/html' is not allowed"),
        ("empty.txt", 0, "text/plain", AttachmentPolicyError, "must not be empty"),
        ("../../etc/passwd", 10, "text/plain", AttachmentPolicyError, "path separator"),
        ("a\\b.txt", 10, "text/plain", AttachmentPolicyError, "path separator"),
        ("nul\x00.txt", 10, "text/plain", AttachmentPolicyError, "NUL"),
        ("n" * 10_240 + ".txt", 10, "text/plain", AttachmentPolicyError, "limit of 255"),
    ],
)
async def test_bad_declarations_are_rejected_and_nothing_is_stored(
    s3_client: Any, bucket: str, name: str, size: int, mime: str, error: type, message: str
) -> None:
    _store, backend, server = make(s3_client, bucket, policy=UploadPolicy(max_size=10_000))
    with pytest.raises(error, match=message):
        await create(server, ALICE, name, size, mime)
    assert await backend.store.list_unattached_attachments(FAR_FUTURE) == []
    assert object_keys(s3_client, bucket) == []


async def test_other_owner_cannot_delete_load_read_or_send(s3_client: Any, bucket: str) -> None:
    store, backend, server = make(s3_client, bucket)
    created = await create(server, ALICE, "a.txt", 3, "text/plain")
    await upload(created["upload_descriptor"], b"abc")
    attachment_id = created["id"]

    assert (
        await call(
            server,
            {"type": "attachments.delete", "params": {"attachment_id": attachment_id}},
            MALLORY,
        )
        == {}
    )
    assert len(object_keys(s3_client, bucket)) == 1
    alices = await store.load_attachment(attachment_id, ALICE)

    with pytest.raises(NotFoundError):
        await store.load_attachment(attachment_id, MALLORY)
    with pytest.raises(NotFoundError):
        await backend.read_attachment_bytes(alices, MALLORY)
    with pytest.raises(NotFoundError):
        await backend.verify_attachment(alices, MALLORY)
    with pytest.raises(NotFoundError):
        await backend.attachment_download_url(alices, MALLORY)
    with pytest.raises(NotFoundError):
        await call(
            server,
            {"type": "threads.create", "params": {"input": user_message("x", [attachment_id])}},
            MALLORY,
        )
    assert (await store.load_attachment(attachment_id, ALICE)).thread_id is None
    assert await backend.read_attachment_bytes(alices, ALICE) == b"abc"


async def test_wrong_size_or_type_upload_fails_verification(s3_client: Any, bucket: str) -> None:
    # moto does not enforce the signed Content-Length/Content-Type; real S3 rejects both. Our
    # verification must catch them anyway (S3-compatible stores differ).
    store, backend, server = make(s3_client, bucket)
    longer = await create(server, ALICE, "a.txt", 3, "text/plain")
    await upload(longer["upload_descriptor"], b"abcdef")
    other_type = await create(server, ALICE, "b.txt", 3, "text/plain")
    await upload(other_type["upload_descriptor"], b"abc", **{"Content-Type": "text/html"})

    for created, message in ((longer, "6 bytes, declared 3"), (other_type, "'text/html'")):
        attachment = await store.store.load_attachment(created["id"], ALICE)
        with pytest.raises(AttachmentVerificationError, match=message):
            await backend.verify_attachment(attachment, ALICE)
        with pytest.raises(AttachmentVerificationError, match=message):
            await backend.read_attachment_bytes(attachment, ALICE)
        with pytest.raises(AttachmentVerificationError):
            await call(
                server,
                {"type": "threads.create", "params": {"input": user_message("x", [created["id"]])}},
                ALICE,
            )


async def test_image_whose_bytes_are_not_an_image_fails_verification(
    s3_client: Any, bucket: str
) -> None:
    store, backend, server = make(s3_client, bucket)
    body = b"<html><script>alert(1)</script>"
    created = await create(server, ALICE, "x.png", len(body), "image/png")
    await upload(created["upload_descriptor"], body)
    attachment = await store.store.load_attachment(created["id"], ALICE)
    with pytest.raises(AttachmentVerificationError, match="not a image/png"):
        await backend.read_attachment_bytes(attachment, ALICE)
    # When the upload is finalized (ChatKit loads the attachment once the upload arrived, it is
    # verified, sent in a message), as a direct upload is checked: before, only reading the
    # bytes caught it.
    with pytest.raises(AttachmentVerificationError, match="not a image/png"):
        await store.load_attachment(created["id"], ALICE)
    with pytest.raises(AttachmentVerificationError, match="not a image/png"):
        await backend.verify_attachment(attachment, ALICE)
    with pytest.raises(AttachmentVerificationError, match="not a image/png"):
        await call(
            server,
            {"type": "threads.create", "params": {"input": user_message("x", [created["id"]])}},
            ALICE,
        )
    # A real PNG of the declared size passes.
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
    good = await create(server, ALICE, "y.png", len(png), "image/png")
    await upload(good["upload_descriptor"], png)
    verified = await backend.verify_attachment(
        await store.load_attachment(good["id"], ALICE), ALICE
    )
    assert verified.upload_descriptor is None


async def test_never_uploaded_and_expired_upload(s3_client: Any, bucket: str) -> None:
    store, backend, server = make(s3_client, bucket, upload_expires_in=1)
    created = await create(server, ALICE, "a.txt", 3, "text/plain")
    assert query(created["upload_descriptor"]["url"])["X-Amz-Expires"] == "1"
    pending = await store.store.load_attachment(created["id"], ALICE)
    # Still within the window: the descriptor stays so the client can upload.
    assert (await store.load_attachment(created["id"], ALICE)).upload_descriptor is not None
    with pytest.raises(NotFoundError, match="has not been uploaded"):
        await backend.verify_attachment(pending, ALICE)
    with pytest.raises(NotFoundError):
        await backend.read_attachment_bytes(pending, ALICE)
    await asyncio.sleep(1.1)
    # Expired: the dead upload URL is not handed out (or persisted into messages) any more.
    assert (await store.load_attachment(created["id"], ALICE)).upload_descriptor is None
    with pytest.raises(NotFoundError):
        await backend.read_attachment_bytes(pending, ALICE)


async def test_foreign_object_key_in_metadata_is_never_used(s3_client: Any, bucket: str) -> None:
    store, backend, server = make(s3_client, bucket)
    bobs = await create(server, Ctx("bob"), "b.txt", 3, "text/plain")
    await upload(bobs["upload_descriptor"], b"bob")
    bobs_key = object_key(bobs["upload_descriptor"]["url"], bucket)

    # An attachment row of Alice's whose record points at Bob's object (say a tampered row).
    tampered = FileAttachment(
        id="atc_tampered",
        name="x.txt",
        mime_type="text/plain",
        metadata={METADATA_KEY: {"backend": "s3", "key": bobs_key, "size": 3}},
    )
    await store.save_attachment(tampered, ALICE)
    with pytest.raises(NotFoundError):
        await backend.read_attachment_bytes(tampered, ALICE)
    with pytest.raises(NotFoundError):
        await backend.attachment_download_url(tampered, ALICE)
    await backend.delete_attachment("atc_tampered", ALICE)
    assert object_keys(s3_client, bucket) == [bobs_key]


async def test_delete_is_idempotent(s3_client: Any, bucket: str) -> None:
    _store, backend, server = make(s3_client, bucket)
    created = await create(server, ALICE, "a.txt", 3, "text/plain")
    await upload(created["upload_descriptor"], b"abc")
    request = {"type": "attachments.delete", "params": {"attachment_id": created["id"]}}
    assert await call(server, request, ALICE) == {}
    assert await call(server, request, ALICE) == {}
    await backend.delete_attachment("atc_never_existed", ALICE)
    assert object_keys(s3_client, bucket) == []


async def test_sweep_orphans_deletes_only_unsent_uploads(s3_client: Any, bucket: str) -> None:
    store, backend, server = make(s3_client, bucket)
    sent = await create(server, ALICE, "sent.txt", 4, "text/plain")
    await upload(sent["upload_descriptor"], b"sent")
    await call(
        server,
        {"type": "threads.create", "params": {"input": user_message("x", [sent["id"]])}},
        ALICE,
    )
    uploaded = await create(server, ALICE, "orphan.txt", 6, "text/plain")
    await upload(uploaded["upload_descriptor"], b"orphan")
    await create(server, MALLORY, "never.txt", 5, "text/plain")  # metadata only, no bytes
    assert len(object_keys(s3_client, bucket)) == 2

    assert await backend.sweep_orphans(timedelta(hours=1)) == 0
    assert await backend.sweep_orphans(timedelta(0)) == 2
    assert object_keys(s3_client, bucket) == [object_key(sent["upload_descriptor"]["url"], bucket)]
    assert await backend.store.list_unattached_attachments(FAR_FUTURE) == []
    assert (await store.load_attachment(sent["id"], ALICE)).thread_id is not None
    with pytest.raises(NotFoundError):
        await store.load_attachment(uploaded["id"], ALICE)


@pytest.mark.parametrize("cascade", [True, False])
async def test_thread_delete_cascade_is_opt_in(s3_client: Any, bucket: str, cascade: bool) -> None:
    store, _backend, server = make(s3_client, bucket, delete_with_thread=cascade)
    created = await create(server, ALICE, "a.txt", 3, "text/plain")
    await upload(created["upload_descriptor"], b"abc")
    events = await call(
        server,
        {"type": "threads.create", "params": {"input": user_message("x", [created["id"]])}},
        ALICE,
    )
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    # Another user deleting a thread with the same id touches nothing of Alice's.
    await call(server, {"type": "threads.delete", "params": {"thread_id": thread_id}}, MALLORY)
    assert len(object_keys(s3_client, bucket)) == 1

    await call(server, {"type": "threads.delete", "params": {"thread_id": thread_id}}, ALICE)
    if cascade:
        assert object_keys(s3_client, bucket) == []
        with pytest.raises(NotFoundError):
            await store.load_attachment(created["id"], ALICE)
    else:
        assert len(object_keys(s3_client, bucket)) == 1
        assert (await store.load_attachment(created["id"], ALICE)).thread_id == thread_id


async def test_create_attachment_does_not_write_to_the_store(s3_client: Any, bucket: str) -> None:
    store, backend, _ = make(s3_client, bucket)
    params = AttachmentCreateParams(name="a.txt", size=3, mime_type="text/plain")
    attachment = await backend.create_attachment(params, ALICE)
    with pytest.raises(NotFoundError):
        await store.load_attachment(attachment.id, ALICE)


def test_expiry_options_are_checked(s3_client: Any) -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    with pytest.raises(ValueError, match="upload_expires_in must be 1 to 604800"):
        S3AttachmentStore(store, client=s3_client, bucket="b", upload_expires_in=0)
    with pytest.raises(ValueError, match="key_prefix"):
        S3AttachmentStore(store, client=s3_client, bucket="b", key_prefix="no-slash")


async def test_server_side_encryption_with_kms_is_requested_and_signed(
    s3_client: Any, bucket: str, s3_endpoint: str
) -> None:
    kms = boto3.client(
        "kms",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    _store, _backend, server = make(
        s3_client, bucket, server_side_encryption="aws:kms", kms_key_id=key_id
    )
    created = await create(server, ALICE, "notes.txt", 5, "text/plain")
    descriptor = created["upload_descriptor"]
    assert descriptor["headers"]["x-amz-server-side-encryption"] == "aws:kms"
    signed = query(descriptor["url"])["X-Amz-SignedHeaders"].split(";")
    assert "x-amz-server-side-encryption" in signed
    assert "x-amz-server-side-encryption-aws-kms-key-id" in signed
    assert (await upload(descriptor, b"hello")).status_code == 200
    head = s3_client.head_object(Bucket=bucket, Key=object_key(descriptor["url"], bucket))
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)
    # Direct writes (generated images, direct uploads) ask for it too.
    blobs = S3BlobStorage(s3_client, bucket, server_side_encryption="AES256")
    await blobs.put("sse/direct", b"bytes", content_type="text/plain")
    assert s3_client.head_object(Bucket=bucket, Key="sse/direct")["ServerSideEncryption"] == (
        "AES256"
    )
    with pytest.raises(ValueError, match="kms_key_id"):
        S3BlobStorage(s3_client, bucket, kms_key_id=key_id)
