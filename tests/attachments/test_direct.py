"""Direct uploads to our routes on a real uvicorn server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from chatkit.store import NotFoundError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from chatkit_kit.attachments import (
    AttachmentContentSource,
    DirectUploadAttachmentStore,
    LocalBlobStorage,
    StoreWithAttachments,
    UploadPolicy,
)
from chatkit_kit.errors import DatabaseUnavailableError
from chatkit_kit.stores import MemoryStore
from tests.fixtures.context import ALICE, MALLORY, Ctx
from tests.fixtures.s3 import object_keys
from tests.fixtures.servers import EchoServer, call, user_message

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
MAX = 64 * 1024


async def context_factory(request: Request) -> Ctx:
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer "):
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return Ctx(auth[len("Bearer ") :])


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The `{"code", "message"}` of a JSON error response, the shape every route answers with."""
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert list(body) == ["error"] and sorted(body["error"]) == ["code", "message"]
    error: dict[str, Any] = body["error"]
    return error


def files_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


class Env:
    def __init__(self, root: Path, base: str, blobs: Any = None, **options: Any) -> None:
        self.root = root
        self.store: MemoryStore[Ctx] = MemoryStore()
        self.blobs = blobs if blobs is not None else LocalBlobStorage(root)
        self.options = options
        self.base = base
        self.body_bytes_read = 0

    def build(self, base_url: str) -> None:
        self.backend: DirectUploadAttachmentStore[Ctx] = DirectUploadAttachmentStore(
            self.store, self.blobs, base_url=base_url, **self.options
        )
        self.chat_store = StoreWithAttachments(self.store, self.backend)
        self.server = EchoServer(self.chat_store, self.backend)
        self.client = httpx.AsyncClient(base_url=base_url, timeout=30)

    def auth(self, ctx: Ctx) -> dict[str, str]:
        return {"Authorization": f"Bearer {ctx.user_id}"}

    async def upload_multipart(self, ctx: Ctx, name: str, body: bytes, mime: str) -> httpx.Response:
        return await self.client.post(
            "/attachments/upload", files={"file": (name, body, mime)}, headers=self.auth(ctx)
        )

    async def unattached(self) -> list[Any]:
        from datetime import datetime, timezone

        return await self.store.list_unattached_attachments(
            datetime(2999, 1, 1, tzinfo=timezone.utc)
        )


@pytest.fixture
async def env(tmp_path: Path, serve: Any) -> AsyncIterator[Env]:
    environment = Env(tmp_path / "blobs", "", policy=UploadPolicy(max_size=MAX))
    yield await _start(environment, serve)
    await environment.client.aclose()


async def _start(environment: Env, serve: Any) -> Env:
    # The app is built lazily so the backend can know the server's real port for base_url.
    holder: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def counting_receive() -> Any:
            message = await receive()
            environment.body_bytes_read += len(message.get("body", b""))
            return message

        await holder["app"](scope, counting_receive, send)

    live = await serve(app)
    environment.build(live.base_url)
    holder["app"] = environment.backend.asgi_app(context_factory)
    return environment


async def test_full_direct_flow_through_chatkit_server(env: Env) -> None:
    response = await env.upload_multipart(ALICE, "cat.png", PNG, "image/png")
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["type"] == "image"
    assert "metadata" not in created and "upload_descriptor" not in created
    attachment_id = created["id"]
    assert created["preview_url"] == f"{env.backend.base_url}/attachments/{attachment_id}"
    stored_files = files_in(env.root)
    assert len(stored_files) == 1 and stored_files[0].read_bytes() == PNG
    assert "cat" not in str(stored_files[0])

    preview = await env.client.get(created["preview_url"], headers=env.auth(ALICE))
    assert preview.status_code == 200 and preview.content == PNG
    assert preview.headers["content-type"] == "image/png"
    assert preview.headers["x-content-type-options"] == "nosniff"
    assert preview.headers["content-disposition"].startswith("inline;")

    events = await call(
        env.server,
        {"type": "threads.create", "params": {"input": user_message("look", [attachment_id])}},
        ALICE,
    )
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    stored = await env.chat_store.load_attachment(attachment_id, ALICE)
    assert stored.thread_id == thread_id and stored.upload_descriptor is None
    listed = await call(
        env.server, {"type": "items.list", "params": {"thread_id": thread_id}}, ALICE
    )
    listed_attachment = listed["data"][0]["attachments"][0]
    assert listed_attachment["preview_url"] == created["preview_url"]
    assert "metadata" not in listed_attachment

    assert isinstance(env.backend, AttachmentContentSource)
    assert await env.backend.read_attachment_bytes(stored, ALICE) == PNG
    assert await env.backend.attachment_download_url(stored, ALICE) is None

    assert (
        await call(
            env.server,
            {"type": "attachments.delete", "params": {"attachment_id": attachment_id}},
            ALICE,
        )
        == {}
    )
    assert files_in(env.root) == []
    with pytest.raises(NotFoundError):
        await env.chat_store.load_attachment(attachment_id, ALICE)
    gone = await env.client.get(f"/attachments/{attachment_id}", headers=env.auth(ALICE))
    assert gone.status_code == 404


async def test_raw_put_upload_and_safe_download_headers(env: Env) -> None:
    name = 'Q3 "report"; x=1 Übersicht.txt'
    response = await env.client.put(
        f"/attachments/upload?name={quote(name)}",
        content=b"plain text",
        headers={**env.auth(ALICE), "Content-Type": "text/plain; charset=utf-8"},
    )
    assert response.status_code == 200, response.text
    created = response.json()
    assert created["type"] == "file" and created["name"] == name
    assert created["mime_type"] == "text/plain"
    download = await env.client.get(f"/attachments/{created['id']}", headers=env.auth(ALICE))
    assert download.content == b"plain text"
    disposition = download.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Q3 _report__ x=1 _bersicht.txt"; ')
    assert disposition.endswith("filename*=UTF-8''" + quote(name, safe=""))
    assert download.headers["content-security-policy"] == "default-src 'none'; sandbox"


async def test_unauthenticated_requests_are_rejected(env: Env) -> None:
    upload = await env.client.post(
        "/attachments/upload", files={"file": ("a.txt", b"x", "text/plain")}
    )
    assert upload.status_code == 401 and upload.headers["www-authenticate"] == "Bearer"
    ok = await env.upload_multipart(ALICE, "a.txt", b"abc", "text/plain")
    download = await env.client.get(f"/attachments/{ok.json()['id']}")
    assert download.status_code == 401
    assert len(files_in(env.root)) == 1


async def test_every_route_error_has_the_json_error_shape(env: Env) -> None:
    """401, 403, 404, 405 and 413 from the upload and download routes: one body shape, codes
    that match the status (the same shape and codes as `/chatkit`, docs/asgi.md)."""
    unauthenticated = await env.client.post(
        "/attachments/upload", files={"file": ("a.txt", b"x", "text/plain")}
    )
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    assert error_of(unauthenticated) == {"code": "unauthorized", "message": "missing bearer token"}

    unknown = await env.client.get("/attachments/atc_nope", headers=env.auth(ALICE))
    assert unknown.status_code == 404
    assert error_of(unknown) == {"code": "not_found", "message": "Attachment atc_nope not found"}

    bad_token = await env.client.get("/attachments/atc_nope?token=forged.sig")
    assert bad_token.status_code == 403 and error_of(bad_token)["code"] == "forbidden"

    for method, path, allow in [
        ("GET", "/attachments/upload", "POST, PUT"),
        ("DELETE", "/attachments/atc_1", "GET, HEAD"),
        ("PATCH", "/attachments/upload", "POST, PUT"),
    ]:
        wrong = await env.client.request(method, path, headers=env.auth(ALICE))
        assert wrong.status_code == 405, (method, path)
        assert wrong.headers["allow"] == allow
        assert error_of(wrong)["code"] == "method_not_allowed"

    too_large = await env.client.put(
        "/attachments/upload?name=a.txt",
        content=b"x" * (MAX + 1),
        headers={**env.auth(ALICE), "Content-Type": "text/plain"},
    )
    assert too_large.status_code == 413
    assert error_of(too_large)["code"] == "attachment_too_large"
    await assert_nothing_stored(env)


async def test_store_outage_during_upload_is_503_and_leaves_nothing(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def unavailable(*args: Any, **kwargs: Any) -> None:
        raise DatabaseUnavailableError("connection to db.internal:5432 refused")

    monkeypatch.setattr(env.store, "save_attachment", unavailable)
    response = await env.upload_multipart(ALICE, "a.txt", b"abc", "text/plain")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert error_of(response)["code"] == "service_unavailable"
    assert "db.internal" not in response.text
    assert files_in(env.root) == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_unexpected_failure_during_upload_is_500_without_details(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(env.store, "save_attachment", broken)
    response = await env.upload_multipart(ALICE, "a.txt", b"abc", "text/plain")

    assert response.status_code == 500
    assert error_of(response) == {"code": "internal_error", "message": "internal server error"}
    assert files_in(env.root) == []
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_other_owner_cannot_download_delete_or_read(env: Env) -> None:
    created = (await env.upload_multipart(ALICE, "a.txt", b"secret", "text/plain")).json()
    attachment_id = created["id"]
    download = await env.client.get(f"/attachments/{attachment_id}", headers=env.auth(MALLORY))
    assert download.status_code == 404 and b"secret" not in download.content
    await call(
        env.server,
        {"type": "attachments.delete", "params": {"attachment_id": attachment_id}},
        MALLORY,
    )
    alices = await env.chat_store.load_attachment(attachment_id, ALICE)
    with pytest.raises(NotFoundError):
        await env.chat_store.load_attachment(attachment_id, MALLORY)
    with pytest.raises(NotFoundError):
        await env.backend.read_attachment_bytes(alices, MALLORY)
    with pytest.raises(NotFoundError):
        await env.backend.attachment_download_url(alices, MALLORY)
    assert await env.backend.read_attachment_bytes(alices, ALICE) == b"secret"


async def assert_nothing_stored(env: Env) -> None:
    assert files_in(env.root) == []
    assert await env.unattached() == []


@pytest.mark.parametrize(
    ("name", "body", "mime", "status", "code", "message"),
    [
        ("big.txt", b"x" * (MAX + 1), "text/plain", 413, "attachment_too_large", f"limit of {MAX}"),
        ("page.html", b"<html>", "text/html", 415, "unsupported_media_type", "'text/html' is not"),
        ("empty.txt", b"", "text/plain", 400, "attachment_not_allowed", "empty"),
        ("../../etc/passwd", b"x", "text/plain", 400, "attachment_not_allowed", "path separator"),
        ("..\\..\\boot.ini", b"x", "text/plain", 400, "attachment_not_allowed", "path separator"),
        # A 10 kB file name in a part header is over python-multipart's header limit.
        ("n" * 10_240, b"x", "text/plain", 400, "invalid_upload", "Maximum header size exceeded"),
        ("fake.png", b"<html><script>", "image/png", 415, "unsupported_media_type", "not a image"),
    ],
)
async def test_bad_multipart_uploads(
    env: Env, name: str, body: bytes, mime: str, status: int, code: str, message: str
) -> None:
    response = await env.upload_multipart(ALICE, name, body, mime)
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code
    assert message in error_of(response)["message"]
    await assert_nothing_stored(env)


@pytest.mark.parametrize(
    ("name", "message"),
    [("a\x00b.txt", "NUL"), ("dir/a.txt", "path separator"), ("x" * 10_240, "limit of 255")],
)
async def test_bad_raw_upload_names(env: Env, name: str, message: str) -> None:
    response = await env.client.put(
        "/attachments/upload",
        params={"name": name},
        content=b"abc",
        headers={**env.auth(ALICE), "Content-Type": "text/plain"},
    )
    assert response.status_code == 400 and message in error_of(response)["message"]
    await assert_nothing_stored(env)


async def test_raw_upload_without_name_is_rejected(env: Env) -> None:
    response = await env.client.put(
        "/attachments/upload",
        content=b"abc",
        headers={**env.auth(ALICE), "Content-Type": "text/plain"},
    )
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_upload"
    assert "'name' query parameter" in error_of(response)["message"]


async def test_truncated_multipart_body_stores_nothing(env: Env) -> None:
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
        "first half of the file"
    ).encode()
    response = await env.client.post(
        "/attachments/upload",
        content=body,
        headers={**env.auth(ALICE), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 400 and "truncated" in error_of(response)["message"]
    await assert_nothing_stored(env)


async def test_oversize_stream_is_cut_off_without_reading_everything(env: Env) -> None:
    sent = 0
    total = 64 * 1024 * 1024

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        chunk = b"x" * 65536
        while sent < total:
            sent += len(chunk)
            yield chunk

    response = await env.client.put(
        "/attachments/upload?name=big.txt",
        content=body(),
        headers={**env.auth(ALICE), "Content-Type": "text/plain"},
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "attachment_too_large"
    assert f"limit of {MAX} bytes" in error_of(response)["message"]
    # The app stopped reading right after the limit (uvicorn discarded the rest unbuffered).
    assert env.body_bytes_read < MAX + 4 * 65536  # one read past the limit, any TCP split
    await assert_nothing_stored(env)

    env.body_bytes_read = 0
    declared = await env.client.put(
        "/attachments/upload?name=big.txt",
        content=b"x" * (MAX + 1),
        headers={**env.auth(ALICE), "Content-Type": "text/plain"},
    )
    assert declared.status_code == 413
    assert env.body_bytes_read == 0  # rejected on Content-Length before reading the body
    await assert_nothing_stored(env)


async def test_cascade_and_sweep(tmp_path: Path, serve: Any) -> None:
    env = await _start(Env(tmp_path / "blobs", "", delete_with_thread=True), serve)
    try:
        sent = (await env.upload_multipart(ALICE, "a.txt", b"abc", "text/plain")).json()
        orphan = (await env.upload_multipart(ALICE, "b.txt", b"def", "text/plain")).json()
        events = await call(
            env.server,
            {"type": "threads.create", "params": {"input": user_message("x", [sent["id"]])}},
            ALICE,
        )
        thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
        assert len(files_in(env.root)) == 2
        from datetime import timedelta

        assert await env.backend.sweep_orphans(timedelta(0)) == 1
        with pytest.raises(NotFoundError):
            await env.chat_store.load_attachment(orphan["id"], ALICE)
        assert len(files_in(env.root)) == 1
        await call(
            env.server, {"type": "threads.delete", "params": {"thread_id": thread_id}}, ALICE
        )
        assert files_in(env.root) == []
        with pytest.raises(NotFoundError):
            await env.chat_store.load_attachment(sent["id"], ALICE)
    finally:
        await env.client.aclose()


async def test_direct_uploads_into_s3(
    tmp_path: Path, serve: Any, s3_client: Any, bucket: str
) -> None:
    from chatkit_kit.attachments import S3BlobStorage

    env = await _start(Env(tmp_path / "unused", "", blobs=S3BlobStorage(s3_client, bucket)), serve)
    try:
        created = (await env.upload_multipart(ALICE, "cat.png", PNG, "image/png")).json()
        assert len(object_keys(s3_client, bucket)) == 1
        download = await env.client.get(f"/attachments/{created['id']}", headers=env.auth(ALICE))
        assert download.content == PNG
        stored = await env.chat_store.load_attachment(created["id"], ALICE)
        assert (await env.backend.verify_attachment(stored, ALICE)).upload_descriptor is None
        await call(
            env.server,
            {"type": "attachments.delete", "params": {"attachment_id": created["id"]}},
            ALICE,
        )
        assert object_keys(s3_client, bucket) == []
    finally:
        await env.client.aclose()


async def test_signed_preview_urls_work_without_credentials(tmp_path: Path, serve: Any) -> None:
    secret = b"k" * 32
    env = await _start(Env(tmp_path / "blobs", "", preview_signing_key=secret), serve)
    try:
        image = (await env.upload_multipart(ALICE, "cat.png", PNG, "image/png")).json()
        other = (await env.upload_multipart(ALICE, "dog.png", PNG, "image/png")).json()
        preview = image["preview_url"]
        assert "?token=" in preview, preview
        # An <img> tag sends no Authorization header: the signed URL alone is enough.
        fetched = await env.client.get(preview)
        assert fetched.status_code == 200 and fetched.content == PNG
        assert fetched.headers["content-type"] == "image/png"
        # Stable within its 5-minute bucket, so browsers can cache it.
        again = await env.chat_store.load_attachment(image["id"], ALICE)
        assert str(again.preview_url) == preview  # type: ignore[union-attr]

        token = preview.split("?token=")[1]
        payload, signature = token.split(".")
        forged = f"{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
        bad_urls = [
            f"/attachments/{image['id']}?token={forged}",
            f"/attachments/{other['id']}?token={token}",  # token of another attachment
            f"/attachments/{image['id']}?token=garbage",
            f"/attachments/{image['id']}?token={payload}.{quote('é' * 43)}",
            f"/attachments/{image['id']}?token=",
        ]
        for url in bad_urls:
            response = await env.client.get(url)
            assert response.status_code == 403, url
            assert PNG not in response.content

        unsigned = DirectUploadAttachmentStore(
            env.store, env.blobs, base_url=env.backend.base_url, preview_signing_key=b"x" * 32
        )
        assert unsigned._token_claims(token, image["id"]) is None  # another key

        import time as time_module

        real_time = time_module.time
        try:
            time_module.time = lambda: real_time() + 3 * 3600
            assert env.backend._token_claims(token, image["id"]) is None  # expired
        finally:
            time_module.time = real_time

        await call(
            env.server,
            {"type": "attachments.delete", "params": {"attachment_id": image["id"]}},
            ALICE,
        )
        assert (await env.client.get(preview)).status_code == 404
    finally:
        await env.client.aclose()


def test_signing_key_must_be_long_enough(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        DirectUploadAttachmentStore(
            MemoryStore(),
            LocalBlobStorage(tmp_path),
            base_url="http://x",
            preview_signing_key="short",
        )
    with pytest.raises(ValueError, match="base_url"):
        DirectUploadAttachmentStore(MemoryStore(), LocalBlobStorage(tmp_path), base_url="/rel")


@pytest.mark.parametrize("multipart", [False, True])
async def test_client_disconnect_mid_upload_stores_nothing(env: Env, multipart: bool) -> None:
    import asyncio
    from urllib.parse import urlsplit

    url = urlsplit(env.backend.base_url)
    if multipart:
        content_type = "multipart/form-data; boundary=xyz"
        start = (
            b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\n" + b"x" * 5000
        )
        target = "/attachments/upload"
    else:
        content_type = "text/plain"
        start = b"x" * 5000
        target = "/attachments/upload?name=a.txt"
    _reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        (
            f"POST {target} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer alice\r\nContent-Type: {content_type}\r\n"
            "Content-Length: 20000\r\n\r\n"
        ).encode()
        + start
    )
    await writer.drain()
    # Counted, not timed: the server has read part of the body before the connection drops
    # with 15 kB of it missing, and then removed its temporary file (60 s only stops a hang).
    await _until(lambda: env.body_bytes_read > 0)
    writer.close()
    await writer.wait_closed()
    await _until(lambda: not any(p.name.endswith(".tmp") for p in env.root.rglob("*")))
    await assert_nothing_stored(env)
    assert env.body_bytes_read > 0  # the upload had started


async def _until(condition: Callable[[], bool], seconds: float = 60) -> None:
    """Wait (yielding to the server) until `condition()` holds; fails after `seconds`."""

    async def poll() -> None:
        while not condition():  # noqa: ASYNC110 (the server's state, no event to wait on)
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), seconds)


async def test_routes_mounted_in_fastapi(tmp_path: Path, serve: Any) -> None:
    import fastapi

    async def fastapi_context(request: Request) -> Ctx:
        user = request.headers.get("x-user")
        if not user:
            raise fastapi.HTTPException(403, "forbidden")
        return Ctx(user)

    store: MemoryStore[Ctx] = MemoryStore()
    holder: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await holder["app"](scope, receive, send)

    live = await serve(app)
    backend: DirectUploadAttachmentStore[Ctx] = DirectUploadAttachmentStore(
        store, LocalBlobStorage(tmp_path), base_url=f"{live.base_url}/chatkit"
    )
    api = fastapi.FastAPI()
    api.mount("/chatkit", backend.asgi_app(fastapi_context))
    holder["app"] = api
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        denied = await client.post("/chatkit/attachments/upload", files={"file": ("a.png", PNG)})
        assert denied.status_code == 403
        created = await client.post(
            "/chatkit/attachments/upload",
            files={"file": ("a.png", PNG, "image/png")},
            headers={"x-user": "alice"},
        )
        assert created.status_code == 200, created.text
        preview_url = created.json()["preview_url"]
        assert preview_url.startswith(f"{live.base_url}/chatkit/attachments/atc_")
        head = await client.head(preview_url, headers={"x-user": "alice"})
        assert head.status_code == 200 and head.headers["content-length"] == str(len(PNG))
        assert head.content == b""
        got = await client.get(preview_url, headers={"x-user": "alice"})
        assert got.content == PNG


async def test_failed_metadata_save_removes_the_bytes(tmp_path: Path) -> None:
    class FailingStore(MemoryStore[Ctx]):
        async def save_attachment(self, attachment: Any, context: Ctx) -> None:
            raise RuntimeError("database down")

    backend: DirectUploadAttachmentStore[Ctx] = DirectUploadAttachmentStore(
        FailingStore(), LocalBlobStorage(tmp_path), base_url="http://x"
    )

    async def body() -> AsyncIterator[bytes]:
        yield b"abc"

    with pytest.raises(RuntimeError, match="database down"):
        await backend.upload(name="a.txt", mime_type="text/plain", data=body(), context=ALICE)
    assert files_in(tmp_path) == []


async def test_direct_uploads_encrypted_on_local_disk(tmp_path: Path, serve: Any) -> None:
    import hashlib

    from chatkit_kit.encryption import (
        DataKeyDestroyedError,
        EncryptedBlobStorage,
        EncryptedStore,
        EnvelopeCodec,
    )
    from tests.stores.encryption_support import provider

    root = tmp_path / "blobs"
    store: EncryptedStore[Ctx] = EncryptedStore(MemoryStore(codec=EnvelopeCodec()), provider())
    blobs = EncryptedBlobStorage(LocalBlobStorage(root), store)
    environment = Env(root, "", blobs=blobs, preview_signing_key=b"k" * 32)
    environment.store = store  # type: ignore[assignment]
    env = await _start(environment, serve)
    try:
        created = (await env.upload_multipart(ALICE, "cat.png", PNG, "image/png")).json()
        other = (await env.upload_multipart(MALLORY, "dog.png", PNG, "image/png")).json()
        alice_hash = hashlib.sha256(b"alice").hexdigest()
        (alice_path,) = [p for p in files_in(root) if alice_hash in str(p)]
        (mallory_path,) = [p for p in files_in(root) if alice_hash not in str(p)]
        assert PNG not in alice_path.read_bytes()
        assert alice_path.read_bytes().startswith(b"ckblob2\n")  # under Alice's data key
        download = await env.client.get(f"/attachments/{created['id']}", headers=env.auth(ALICE))
        assert download.content == PNG
        preview = await env.client.get(created["preview_url"])  # signed: no owner in the call
        assert preview.status_code == 200 and preview.content == PNG
        stored = await env.chat_store.load_attachment(created["id"], ALICE)
        assert (await env.backend.verify_attachment(stored, ALICE)).upload_descriptor is None
        # Erased with the backend, the bytes go; a backup of them is shredded.
        backup = alice_path.read_bytes()
        await store.erase_owner(ALICE.user_id, attachments=env.backend)
        assert not alice_path.exists()
        alice_path.write_bytes(backup)
        key = str(alice_path.relative_to(root))
        with pytest.raises(DataKeyDestroyedError):
            await blobs.get(key)
        assert await blobs.get(str(mallory_path.relative_to(root))) == PNG
        stored_other = await env.chat_store.load_attachment(other["id"], MALLORY)
        assert await env.backend.read_attachment_bytes(stored_other, MALLORY) == PNG
    finally:
        await env.client.aclose()
