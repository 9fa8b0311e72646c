"""ChatKit's direct upload strategy: our own upload and download routes over a BlobStorage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Generic
from urllib.parse import quote

from chatkit.store import NotFoundError, Store, TContext
from chatkit.types import Attachment, FileAttachment, ImageAttachment
from pydantic import AnyUrl

from .._http import ContextFactory
from .._optional import require
from ..stores._rules import OwnerResolver, check_id
from ._backend import BlobAttachmentStore
from ._blobs import BlobStorage
from ._errors import (
    AttachmentError,
    AttachmentPolicyError,
    AttachmentTooLargeError,
    InvalidUploadError,
)
from ._policy import _MIME_RE, SIGNATURE_BYTES, UploadPolicy

require("starlette", "server")
require("python_multipart", "server")

from python_multipart.exceptions import MultipartParseError  # noqa: E402
from python_multipart.multipart import MultipartParser, parse_options_header  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import ClientDisconnect, Request  # noqa: E402
from starlette.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import BaseRoute, Route  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from python_multipart.multipart import MultipartCallbacks

MULTIPART_OVERHEAD = 64 * 1024
"""Bytes a multipart body may carry besides the file's own bytes (boundaries, headers, other
fields); a body larger than `max_size` plus this is cut off with 413."""

_MAX_PARTS = 16
_TOKEN_CONTEXT = b"chatkit-kit preview v1\n"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("bad base64") from exc


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def content_disposition(disposition: str, name: str) -> str:
    """A Content-Disposition value that no file name can break out of (RFC 6266)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%;' else "_" for c in name)
    encoded = quote(name, safe="")
    return f"{disposition}; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


class _MultipartFile:
    """Reads the first `file` part of a multipart/form-data stream without buffering it."""

    def __init__(self, chunks: AsyncIterator[bytes], boundary: bytes) -> None:
        self._chunks = chunks
        self._events: deque[tuple[str, Any]] = deque()
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._finished = False
        self._other_bytes = 0
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }
        self._parser = MultipartParser(boundary, callbacks)

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def _on_headers_finished(self) -> None:
        self._events.append(("headers", self._headers))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(("data", bytes(data[start:end])))

    def _on_part_end(self) -> None:
        self._events.append(("part_end", None))

    def _on_end(self) -> None:
        self._finished = True
        self._events.append(("end", None))

    async def _next(self) -> tuple[str, Any]:
        while not self._events:
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                raise InvalidUploadError(
                    "the multipart body ended before its closing boundary (truncated upload)"
                ) from None
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise InvalidUploadError(f"malformed multipart body: {exc}") from None
        return self._events.popleft()

    def _count_other(self, size: int) -> None:
        self._other_bytes += size
        if self._other_bytes > MULTIPART_OVERHEAD:
            raise AttachmentTooLargeError(
                f"multipart fields besides 'file' exceed {MULTIPART_OVERHEAD} bytes"
            )

    async def open(self) -> tuple[str, str]:
        """Skip to the `file` part; return its file name and Content-Type."""
        parts = 0
        while True:
            kind, value = await self._next()
            if kind == "headers":
                parts += 1
                if parts > _MAX_PARTS:
                    raise InvalidUploadError(f"multipart body has more than {_MAX_PARTS} parts")
                _, params = parse_options_header(value.get(b"content-disposition", b""))
                if params.get(b"name") == b"file" and b"filename" in params:
                    try:
                        name = params[b"filename"].decode("utf-8")
                    except UnicodeDecodeError:
                        raise InvalidUploadError("the file name is not valid UTF-8") from None
                    return name, value.get(b"content-type", b"").decode("latin-1")
            elif kind == "data":
                self._count_other(len(value))
            elif kind == "end":
                raise InvalidUploadError("the multipart body has no 'file' field with a file name")

    async def data(self) -> AsyncIterator[bytes]:
        """Yield the file part's bytes, then read the rest of the body to check it is complete."""
        while True:
            kind, value = await self._next()
            if kind == "data":
                yield value
            elif kind == "part_end":
                break
        while not self._finished:
            kind, value = await self._next()
            if kind == "data":
                self._count_other(len(value))


async def _capped(chunks: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise AttachmentTooLargeError(f"request body exceeds the limit of {limit} bytes")
        yield chunk


class DirectUploadAttachmentStore(BlobAttachmentStore[TContext], Generic[TContext]):
    """ChatKit's direct upload strategy: the client posts the file to our upload route.

    `routes(context_factory)` gives the upload route (`POST`/`PUT /attachments/upload`,
    multipart with a `file` field or a raw body with `?name=`) and the owner-only download route
    (`GET /attachments/{attachment_id}`); image `preview_url`s point at the latter under
    `base_url`. Bytes go to any `BlobStorage` (`LocalBlobStorage`, `S3BlobStorage`).
    With `preview_signing_key`, preview URLs carry an expiring HMAC token so `<img>` tags load
    them without the owner's credentials. See docs/attachments.md.
    """

    backend_name = "direct"

    def __init__(
        self,
        store: Store[TContext],
        blobs: BlobStorage,
        *,
        base_url: str,
        key_prefix: str = "attachments/",
        policy: UploadPolicy | None = None,
        owner: OwnerResolver | None = None,
        delete_with_thread: bool = False,
        preview_signing_key: bytes | str | None = None,
        preview_expires_in: int = 3600,
    ) -> None:
        super().__init__(
            store,
            blobs,
            policy=policy,
            key_prefix=key_prefix,
            owner=owner,
            delete_with_thread=delete_with_thread,
        )
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(
                f"base_url {base_url!r} must be the absolute http(s) URL the routes are mounted "
                "at, e.g. 'https://api.example.com/chatkit'"
            )
        self.base_url = base_url.rstrip("/")
        if isinstance(preview_signing_key, str):
            preview_signing_key = preview_signing_key.encode()
        if preview_signing_key is not None and len(preview_signing_key) < 32:
            raise ValueError(
                "preview_signing_key must be at least 32 bytes of secret, e.g. "
                "secrets.token_bytes(32)"
            )
        if not 60 <= preview_expires_in <= 7 * 24 * 3600:
            raise ValueError(
                f"preview_expires_in must be 60 to 604800 seconds, got {preview_expires_in}"
            )
        self._signing_key = preview_signing_key
        self.preview_expires_in = preview_expires_in

    def download_url(self, attachment_id: str) -> str:
        """The URL of the download route for `attachment_id`."""
        return f"{self.base_url}/attachments/{quote(attachment_id, safe='')}"

    def preview_url(self, attachment: Attachment, key: str) -> str:
        """The image preview URL: the download route, signed when a signing key is set.

        A signed URL works without the owner's credentials until it expires (browsers load
        `<img>` tags without the custom headers a ChatKit `fetch` adds). Expiry is rounded up to
        5 minutes so the URL, and the browser's cache of it, stays stable meanwhile.
        """
        url = self.download_url(attachment.id)
        if self._signing_key is None:
            return url
        expires = (int(time.time()) + self.preview_expires_in + 299) // 300 * 300
        claims = {"i": attachment.id, "k": key, "t": attachment.mime_type, "e": expires}
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{url}?token={payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        assert self._signing_key is not None
        digest = hmac.new(self._signing_key, _TOKEN_CONTEXT + payload.encode(), hashlib.sha256)
        return _b64(digest.digest())

    def _token_claims(self, token: str, attachment_id: str) -> dict[str, Any] | None:
        """The claims of a valid, unexpired preview token for `attachment_id`, else None."""
        if self._signing_key is None or token.count(".") != 1:
            return None
        payload, signature = token.split(".")
        expected = self._sign(payload).encode()
        if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
            return None
        try:
            claims = json.loads(_unb64(payload))
        except ValueError:
            return None
        if not isinstance(claims, dict) or claims.get("i") != attachment_id:
            return None
        expires = claims.get("e")
        if not isinstance(expires, int) or expires <= time.time():
            return None
        if not isinstance(claims.get("k"), str) or not isinstance(claims.get("t"), str):
            return None
        if not claims["k"].startswith(self.key_prefix) or not self.policy.is_image(claims["t"]):
            return None
        return claims

    async def upload(
        self, *, name: str, mime_type: str, data: AsyncIterable[bytes], context: TContext
    ) -> Attachment:
        """Store an uploaded file for the context owner and save its attachment metadata.

        Name and type are checked before any byte is read; the size limit while streaming.
        Nothing is left behind when any check fails.
        """
        owner = self.owner_key(context)
        self.policy.check_name(name)
        checked_type = self.policy.check_mime_type(mime_type)
        attachment_id = check_id(
            self.generate_attachment_id(checked_type, context), "attachment id"
        )
        key = self.new_key(owner)
        info = await self.blobs.put(
            key,
            self._checked(data, checked_type),
            content_type=checked_type,
            max_size=self.policy.max_size,
        )
        try:
            fields: dict[str, Any] = {
                "id": attachment_id,
                "name": name,
                "mime_type": checked_type,
                "metadata": self.make_metadata(key, info.size),
            }
            attachment: Attachment
            if self.policy.is_image(checked_type):
                preview = FileAttachment(**fields)
                url = AnyUrl(self.preview_url(preview, key))
                attachment = ImageAttachment(preview_url=url, **fields)
            else:
                attachment = FileAttachment(**fields)
            await self.store.save_attachment(attachment, context)
        except BaseException:
            await self.blobs.delete(key)
            raise
        return attachment

    async def _checked(self, data: AsyncIterable[bytes], mime_type: str) -> AsyncIterator[bytes]:
        size = 0
        head = b""
        async for chunk in data:
            size += len(chunk)
            if size > self.policy.max_size:
                raise AttachmentTooLargeError(
                    f"upload exceeds the limit of {self.policy.max_size} bytes"
                )
            if len(head) < SIGNATURE_BYTES:
                head += chunk[: SIGNATURE_BYTES - len(head)]
                if len(head) >= SIGNATURE_BYTES:
                    self.policy.check_signature(mime_type, head)
            yield chunk
        if size == 0:
            raise AttachmentPolicyError("the uploaded file is empty (minimum 1 byte)")
        if len(head) < SIGNATURE_BYTES:
            self.policy.check_signature(mime_type, head)

    async def present_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        """Presenter hook: point image previews at the download route under `base_url`."""
        if self.presenting_disabled() or self.record_of(attachment) is None:
            return attachment
        update: dict[str, Any] = {}
        if attachment.upload_descriptor is not None:
            update["upload_descriptor"] = None
        key = self.key_for_owner(attachment, self.owner_key(context))
        if isinstance(attachment, ImageAttachment) and key is not None:
            url = self.preview_url(attachment, key)
            if str(attachment.preview_url) != url:
                update["preview_url"] = AnyUrl(url)
        return attachment.model_copy(update=update) if update else attachment

    async def attachment_download_url(
        self, attachment: Attachment, context: Any, *, expires_in: int = 300
    ) -> str | None:
        """None: the download route needs the owner's credentials, which a model does not have."""
        await self.load_owned(attachment.id, context)
        return None

    # HTTP

    def routes(self, context_factory: ContextFactory) -> list[BaseRoute]:
        """The upload and download routes, relative to where the app mounts them."""

        async def upload(request: Request) -> Response:
            return await self.handle_upload(request, context_factory)

        async def download(request: Request) -> Response:
            return await self.handle_download(request, context_factory)

        return [
            Route("/attachments/upload", upload, methods=["POST", "PUT"]),
            Route("/attachments/{attachment_id}", download, methods=["GET"]),
        ]

    def asgi_app(self, context_factory: ContextFactory) -> Starlette:
        """A Starlette app serving only `routes(context_factory)`."""
        return Starlette(routes=self.routes(context_factory))

    async def handle_upload(self, request: Request, context_factory: ContextFactory) -> Response:
        """Serve an upload: multipart `file` field, or the raw body named by `?name=`."""
        try:
            context = await context_factory(request)
        except HTTPException as exc:
            return _error(exc.status_code, str(exc.detail), exc.headers)
        limit = self.policy.max_size
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            overhead = MULTIPART_OVERHEAD if self._is_multipart(request) else 0
            if int(declared) > limit + overhead:
                return _error(413, f"upload exceeds the limit of {limit} bytes")
        try:
            if self._is_multipart(request):
                _, params = parse_options_header(request.headers.get("content-type", ""))
                boundary = params.get(b"boundary")
                if not boundary:
                    raise InvalidUploadError("multipart/form-data without a boundary")
                body = _capped(request.stream(), limit + MULTIPART_OVERHEAD)
                reader = _MultipartFile(body.__aiter__(), boundary)
                name, mime_type = await reader.open()
                attachment = await self.upload(
                    name=name, mime_type=mime_type, data=reader.data(), context=context
                )
            else:
                raw_name = request.query_params.get("name")
                if raw_name is None:
                    raise InvalidUploadError(
                        "a raw upload needs the file name in the 'name' query parameter "
                        "(or send multipart/form-data with a 'file' field)"
                    )
                attachment = await self.upload(
                    name=raw_name,
                    mime_type=request.headers.get("content-type", ""),
                    data=_capped(request.stream(), limit),
                    context=context,
                )
        except AttachmentError as exc:
            # The app stops reading here; the ASGI server discards whatever else the client
            # sends, so the client still gets this response (cap bodies at the proxy too).
            return _error(exc.status_code, str(exc))
        except ClientDisconnect:
            return _error(400, "the client disconnected before the upload was complete")
        body_json = attachment.model_dump_json(
            by_alias=True, exclude_none=True, context={"exclude_metadata": True}
        )
        return Response(body_json, media_type="application/json")

    @staticmethod
    def _is_multipart(request: Request) -> bool:
        essence, _ = parse_options_header(request.headers.get("content-type", ""))
        return essence == b"multipart/form-data"

    async def handle_download(self, request: Request, context_factory: ContextFactory) -> Response:
        """Serve an attachment's bytes to its owner (or to a valid signed preview URL), with
        its stored type, never sniffed."""
        attachment_id = request.path_params["attachment_id"]
        token = request.query_params.get("token")
        if token is not None:
            claims = self._token_claims(token, attachment_id)
            if claims is None:
                return _error(403, "the preview link is invalid or has expired")
            key, mime_type, name = claims["k"], claims["t"], attachment_id
        else:
            try:
                context = await context_factory(request)
            except HTTPException as exc:
                return _error(exc.status_code, str(exc.detail), exc.headers)
            try:
                attachment, key = await self.owned_key(attachment_id, context)
            except NotFoundError:
                return _error(404, f"Attachment {attachment_id} not found")
            mime_type, name = attachment.mime_type, attachment.name
        info = await self.blobs.stat(key)
        if info is None:
            return _error(404, f"Attachment {attachment_id} not found")
        if not _MIME_RE.match(mime_type):
            mime_type = "application/octet-stream"
        disposition = "inline" if self.policy.is_image(mime_type) else "attachment"
        headers = {
            "Content-Length": str(info.size),
            "Content-Disposition": content_disposition(disposition, name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=300",
            "Referrer-Policy": "no-referrer",
        }
        if request.method == "HEAD":
            return Response(headers=headers, media_type=mime_type)
        return StreamingResponse(self.blobs.stream(key), headers=headers, media_type=mime_type)
