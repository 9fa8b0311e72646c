"""Blob storage in an S3 bucket (boto3; every network call runs in a worker thread)."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime, timezone
from typing import Any

from .._optional import require
from ._blobs import CHUNK_SIZE, BlobInfo, BlobNotFoundError, check_key, iter_data, too_large

require("boto3", "s3")

from botocore.exceptions import ClientError  # noqa: E402

_SPOOL_IN_MEMORY = 1024 * 1024
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _is_missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(error.get("Code")) in _MISSING_CODES or status == 404


class S3BlobStorage:
    """Blobs as objects in one S3 bucket.

    Pass a boto3 S3 client you configured (region, credentials, `endpoint_url` for S3-compatible
    stores). For presigned uploads it should use SigV4: `Config(signature_version="s3v4")`.
    """

    def __init__(self, client: Any, bucket: str) -> None:
        if not bucket:
            raise ValueError("bucket must be a non-empty S3 bucket name")
        self.client = client
        self.bucket = bucket

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
            await asyncio.to_thread(
                self.client.upload_fileobj,
                spool,
                self.bucket,
                key,
                ExtraArgs={"ContentType": content_type},
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

        return await asyncio.to_thread(read)

    async def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        check_key(key)
        try:
            response = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFoundError(f"no blob stored under {key!r}") from None
            raise
        body = response["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, chunk_size):
                yield chunk
        finally:
            # Closing synchronously also works when the generator is closed by the collector.
            body.close()

    async def stat(self, key: str) -> BlobInfo | None:
        check_key(key)
        try:
            head = await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=key)
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
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)

    async def presign_put(
        self, key: str, *, content_type: str, content_length: int, expires_in: int
    ) -> tuple[str, dict[str, str]]:
        """Return a presigned PUT URL and the headers the uploader must send.

        `Content-Type` and `Content-Length` are signed, so S3 rejects another type or size.
        Browsers set `Content-Length` from the body themselves (they may not set it), so the
        returned headers hold only `Content-Type`.
        """
        check_key(key)
        url: str = await asyncio.to_thread(
            self.client.generate_presigned_url,
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": content_length,
            },
            ExpiresIn=expires_in,
            HttpMethod="PUT",
        )
        return url, {"Content-Type": content_type}

    async def presign_get(self, key: str, *, expires_in: int) -> str:
        """Return a presigned GET URL for `key`."""
        check_key(key)
        url: str = await asyncio.to_thread(
            self.client.generate_presigned_url,
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=expires_in,
        )
        return url
