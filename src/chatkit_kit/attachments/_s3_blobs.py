"""Blob storage in an S3 bucket (boto3; every network call runs in a worker thread)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any, TypeVar

from .._chunks import CHUNK_SIZE, iter_data
from .._optional import require
from ..errors import AttachmentStorageError, AttachmentStorageUnavailableError
from ._blobs import BlobInfo, BlobNotFoundError, check_key, too_large

require("boto3", "s3")

from boto3.exceptions import Boto3Error  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

_SPOOL_IN_MEMORY = 1024 * 1024
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ServiceUnavailable",
        "InternalError",
    }
)
_T = TypeVar("_T")


def storage_error(exc: BaseException) -> AttachmentStorageError:
    """`exc` (boto3's, botocore's, a socket's) as a chatkit-kit error: unavailable (retryable)
    for connection failures, timeouts, 5xx and throttling answers; AttachmentStorageError for
    the rest (access denied, a missing bucket)."""
    described = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if str(error.get("Code")) in _TRANSIENT_CODES or int(status) >= 500:
            return AttachmentStorageUnavailableError(
                f"the attachment storage is unavailable ({described}); retry later"
            )
        return AttachmentStorageError(
            f"the attachment storage refused the call ({described}); check the bucket, the "
            "credentials and their permissions"
        )
    if isinstance(exc, Boto3Error) and isinstance(exc.__context__, (ClientError, Boto3Error)):
        return storage_error(exc.__context__)  # S3UploadFailedError wraps the real error
    return AttachmentStorageUnavailableError(
        f"the attachment storage could not be reached ({described}); retry later"
    )


_STORAGE_FAILURES = (BotoCoreError, Boto3Error, OSError)
"""What boto3 raises for an outage besides ClientError: EndpointConnectionError,
ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError, S3UploadFailedError..."""


async def _run(
    function: Callable[..., _T], /, *args: Any, missing_ok: bool = True, **kwargs: Any
) -> _T:
    """`function(*args, **kwargs)` in a worker thread; a storage failure raises a chatkit-kit
    error, except a missing object with `missing_ok` (a ClientError the caller handles)."""
    try:
        return await asyncio.to_thread(function, *args, **kwargs)
    except ClientError as exc:
        if missing_ok and _is_missing(exc):
            raise
        raise storage_error(exc) from exc
    except _STORAGE_FAILURES as exc:
        raise storage_error(exc) from exc
    except Exception as exc:
        if type(exc).__module__.partition(".")[0] in ("urllib3", "botocore", "boto3", "s3transfer"):
            raise storage_error(exc) from exc  # e.g. a body read cut off mid-way
        raise


def _is_missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if error.get("Code") == "NoSuchBucket":
        return False
    return str(error.get("Code")) in _MISSING_CODES or status == 404


class S3BlobStorage:
    """Blobs as objects in one S3 bucket.

    Pass a boto3 S3 client you configured (region, credentials, `endpoint_url` for S3-compatible
    stores). For presigned uploads it should use SigV4: `Config(signature_version="s3v4")`.

    `server_side_encryption`: `"aws:kms"` (with `kms_key_id`, else the account's default
    `aws/s3` key) or `"AES256"` (S3-managed keys) is requested on every upload, presigned ones
    included (the headers are signed, and returned for the uploader to send); None (the default)
    leaves it to the bucket's default encryption.
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        server_side_encryption: str | None = None,
        kms_key_id: str | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("bucket must be a non-empty S3 bucket name")
        if server_side_encryption not in (None, "aws:kms", "AES256"):
            raise ValueError(
                "server_side_encryption must be 'aws:kms', 'AES256' or None, got "
                f"{server_side_encryption!r}"
            )
        if kms_key_id is not None and server_side_encryption != "aws:kms":
            raise ValueError("kms_key_id needs server_side_encryption='aws:kms'")
        self.client = client
        self.bucket = bucket
        self.server_side_encryption = server_side_encryption
        self.kms_key_id = kms_key_id

    def _encryption_params(self) -> dict[str, str]:
        """The S3 request parameters asking for server-side encryption (none by default)."""
        params: dict[str, str] = {}
        if self.server_side_encryption is not None:
            params["ServerSideEncryption"] = self.server_side_encryption
        if self.kms_key_id is not None:
            params["SSEKMSKeyId"] = self.kms_key_id
        return params

    def _encryption_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.server_side_encryption is not None:
            headers["x-amz-server-side-encryption"] = self.server_side_encryption
        if self.kms_key_id is not None:
            headers["x-amz-server-side-encryption-aws-kms-key-id"] = self.kms_key_id
        return headers

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> BlobInfo:
        check_key(key)
        # Spool first (memory, then a temporary file) so the limit is enforced before anything
        # reaches S3 and a failed upload never leaves a partial object.
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
            size = 0
            async for chunk in iter_data(data):
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise too_large(max_size)
                await asyncio.to_thread(spool.write, chunk)
            await asyncio.to_thread(spool.seek, 0)
            await _run(
                self.client.upload_fileobj,
                spool,
                self.bucket,
                key,
                ExtraArgs={"ContentType": content_type, **self._encryption_params()},
                missing_ok=False,
            )
        return BlobInfo(size, content_type, datetime.now(timezone.utc))

    async def get(self, key: str) -> bytes:
        check_key(key)

        def read() -> bytes:
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _is_missing(exc):
                    raise BlobNotFoundError(f"no blob stored under {key!r}") from None
                raise
            body = response["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
            return data

        return await _run(read)

    async def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        check_key(key)
        try:
            response = await _run(self.client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFoundError(f"no blob stored under {key!r}") from None
            raise
        body = response["Body"]
        try:
            while chunk := await _run(body.read, chunk_size):
                yield chunk
        finally:
            # Closing synchronously also works when the generator is closed by the collector.
            body.close()

    async def stat(self, key: str) -> BlobInfo | None:
        check_key(key)
        try:
            head = await _run(self.client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return None
            raise
        modified = head.get("LastModified")
        if not isinstance(modified, datetime):
            modified = datetime.now(timezone.utc)
        return BlobInfo(int(head["ContentLength"]), head.get("ContentType"), modified)

    async def delete(self, key: str) -> None:
        check_key(key)
        await _run(self.client.delete_object, Bucket=self.bucket, Key=key)

    async def presign_put(
        self, key: str, *, content_type: str, content_length: int, expires_in: int
    ) -> tuple[str, dict[str, str]]:
        """Return a presigned PUT URL and the headers the uploader must send.

        `Content-Type` and `Content-Length` are signed, so S3 rejects another type or size.
        Browsers set `Content-Length` from the body themselves (they may not set it), so the
        returned headers hold only `Content-Type`.
        """
        check_key(key)
        url: str = await _run(
            self.client.generate_presigned_url,
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": content_length,
                **self._encryption_params(),
            },
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return url, {"Content-Type": content_type, **self._encryption_headers()}

    async def presign_get(self, key: str, *, expires_in: int) -> str:
        """Return a presigned GET URL for `key`."""
        check_key(key)
        url: str = await _run(
            self.client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=expires_in,
        )
        return url
