"""ChatKit's direct upload strategy: our own upload and download routes over a BlobStorage."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Generic
from urllib.parse import quote

from chatkit.store import NotFoundError, Store, TContext
from chatkit.types import Attachment, FileAttachment, ImageAttachment
from pydantic import AnyUrl

from .._http import ContextFactory
from .._http_errors import ErrorReply, client_error, log_failure, reply_for
from .._optional import require
from ..stores import OwnerResolver, check_id
from ._backend import BlobAttachmentStore
from ._blobs import BlobStorage
from ._errors import AttachmentPolicyError, AttachmentTooLargeError, InvalidUploadError
from ._multipart import (
    MULTIPART_OVERHEAD,
    MultipartFileReader,
    boundary_of,
    capped,
    is_multipart,
)
from ._policy import _MIME_RE, SIGNATURE_BYTES, UploadPolicy

require("starlette", "server")

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import ClientDisconnect, Request  # noqa: E402
from starlette.responses import Response, StreamingResponse  # noqa: E402
from starlette.routing import BaseRoute, Route  # noqa: E402

logger = logging.getLogger(__name__)

_UPLOAD_METHODS = ("POST", "PUT")
_DOWNLOAD_METHODS = ("GET", "HEAD")
# The routes take every method and answer the ones they do not serve with a JSON 405.
_ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
_TOKEN_CONTEXT = b"chatkit-kit preview v1\n"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("bad base64") from exc


def _method_not_allowed(method: str, allowed: tuple[str, ...]) -> Response:
    message = f"{method} is not allowed here; use {' or '.join(allowed)}"
    reply = ErrorReply(405, "method_not_allowed", message, {"Allow": ", ".join(allowed)})
    return reply.response()


def _failed(exc: Exception, what: str) -> Response:
    """The JSON error response for `exc` (logged with a traceback only if it is a server fault)."""
    reply = reply_for(exc)
    log_failure(logger, reply, exc, "%s failed", what)
    return reply.response()


def _content_disposition(disposition: str, name: str) -> str:
    """A Content-Disposition value that no file name can break out of (RFC 6266)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\%;' else "_" for c in name)
    encoded = quote(name, safe="")
    return f"{disposition}; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


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

    def _preview_url(self, attachment: Attachment, key: str) -> str:
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
        key = self._new_object_key(owner)
        info = await self._put(
            owner,
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
                "metadata": self._new_metadata(key, info.size),
            }
            attachment: Attachment
            if self.policy.is_image(checked_type):
                preview = FileAttachment(**fields)
                url = AnyUrl(self._preview_url(preview, key))
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
        """`AttachmentPresenter`: point image previews at the download route under `base_url`."""
        if self._record(attachment) is None:
            return attachment
        update: dict[str, Any] = {}
        if attachment.upload_descriptor is not None:
            update["upload_descriptor"] = None
        key = self._object_key(attachment, self.owner_key(context))
        if isinstance(attachment, ImageAttachment) and key is not None:
            url = self._preview_url(attachment, key)
            if str(attachment.preview_url) != url:
                update["preview_url"] = AnyUrl(url)
        return attachment.model_copy(update=update) if update else attachment

    async def attachment_download_url(
        self, attachment: Attachment, context: Any, *, expires_in: int = 300
    ) -> str | None:
        """None: the download route needs the owner's credentials, which a model does not have."""
        await self._load(attachment.id, context)
        return None

    # HTTP

    def routes(self, context_factory: ContextFactory) -> list[BaseRoute]:
        """The upload and download routes, relative to where the app mounts them."""

        async def upload(request: Request) -> Response:
            return await self.handle_upload(request, context_factory)

        async def download(request: Request) -> Response:
            return await self.handle_download(request, context_factory)

        return [
            Route("/attachments/upload", upload, methods=_ALL_METHODS),
            Route("/attachments/{attachment_id}", download, methods=_ALL_METHODS),
        ]

    def asgi_app(self, context_factory: ContextFactory) -> Starlette:
        """A Starlette app serving only `routes(context_factory)`."""
        return Starlette(routes=self.routes(context_factory))

    @property
    def upload_url(self) -> str:
        """The URL of the upload route: the ChatKit client's `uploadStrategy.uploadUrl`."""
        return f"{self.base_url}/attachments/upload"

    async def handle_upload(self, request: Request, context_factory: ContextFactory) -> Response:
        """Serve an upload: multipart `file` field, or the raw body named by `?name=`.

        Errors are JSON (`{"error": {"code", "message"}}`) with the status of the error
        (docs/asgi.md); the app stops reading the body at the first error, and the ASGI server
        discards whatever else the client sends (cap bodies at the proxy too).
        """
        if request.method not in _UPLOAD_METHODS:
            return _method_not_allowed(request.method, _UPLOAD_METHODS)
        try:
            attachment = await self._receive_upload(request, context_factory)
        except ClientDisconnect:
            message = "the client disconnected before the upload was complete"
            return client_error(400, message).response()
        except Exception as exc:
            return _failed(exc, "Attachment upload")
        body_json = attachment.model_dump_json(
            by_alias=True, exclude_none=True, context={"exclude_metadata": True}
        )
        return Response(body_json, media_type="application/json")

    async def _receive_upload(
        self, request: Request, context_factory: ContextFactory
    ) -> Attachment:
        context = await context_factory(request)
        limit = self.policy.max_size
        content_type = request.headers.get("content-type", "")
        multipart = is_multipart(content_type)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit + (MULTIPART_OVERHEAD if multipart else 0):
                raise AttachmentTooLargeError(f"upload exceeds the limit of {limit} bytes")
        if multipart:
            body = capped(request.stream(), limit + MULTIPART_OVERHEAD)
            reader = MultipartFileReader(body.__aiter__(), boundary_of(content_type))
            name, mime_type = await reader.open()
            return await self.upload(
                name=name, mime_type=mime_type, data=reader.data(), context=context
            )
        raw_name = request.query_params.get("name")
        if raw_name is None:
            raise InvalidUploadError(
                "a raw upload needs the file name in the 'name' query parameter "
                "(or send multipart/form-data with a 'file' field)"
            )
        return await self.upload(
            name=raw_name,
            mime_type=content_type,
            data=capped(request.stream(), limit),
            context=context,
        )

    async def handle_download(self, request: Request, context_factory: ContextFactory) -> Response:
        """Serve an attachment's bytes to its owner (or to a valid signed preview URL), with
        its stored type, never sniffed."""
        if request.method not in _DOWNLOAD_METHODS:
            return _method_not_allowed(request.method, _DOWNLOAD_METHODS)
        attachment_id = request.path_params["attachment_id"]
        try:
            return await self._download(request, attachment_id, context_factory)
        except Exception as exc:
            return _failed(exc, "Attachment download")

    async def _download(
        self, request: Request, attachment_id: str, context_factory: ContextFactory
    ) -> Response:
        token = request.query_params.get("token")
        if token is not None:
            claims = self._token_claims(token, attachment_id)
            if claims is None:
                return client_error(403, "the preview link is invalid or has expired").response()
            key, mime_type, name = claims["k"], claims["t"], attachment_id
        else:
            context = await context_factory(request)
            try:
                attachment, key = await self._load_with_object_key(attachment_id, context)
            except NotFoundError:
                return client_error(404, f"Attachment {attachment_id} not found").response()
            mime_type, name = attachment.mime_type, attachment.name
        info = await self.blobs.stat(key)
        if info is None:
            return client_error(404, f"Attachment {attachment_id} not found").response()
        if not _MIME_RE.match(mime_type):
            mime_type = "application/octet-stream"
        disposition = "inline" if self.policy.is_image(mime_type) else "attachment"
        headers = {
            "Content-Length": str(info.size),
            "Content-Disposition": _content_disposition(disposition, name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=300",
            "Referrer-Policy": "no-referrer",
        }
        if request.method == "HEAD":
            return Response(headers=headers, media_type=mime_type)
        return StreamingResponse(self.blobs.stream(key), headers=headers, media_type=mime_type)
