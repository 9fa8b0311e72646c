"""A small async blob-storage interface and its local-directory implementation."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from stat import S_ISREG
from typing import IO, Protocol, runtime_checkable

from chatkit.store import NotFoundError

from ._errors import AttachmentTooLargeError

CHUNK_SIZE = 64 * 1024

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
MAX_KEY_LENGTH = 512


class BlobNotFoundError(NotFoundError):
    """No blob is stored under the key."""


@dataclass(frozen=True)
class BlobInfo:
    """What the storage knows about a stored blob."""

    size: int
    content_type: str | None
    """`None` when the storage does not record types (LocalBlobStorage)."""
    modified: datetime


def check_key(key: str) -> str:
    """Return `key` if it is a storage key chatkit-kit generates, else raise ValueError.

    Keys are `/`-separated segments of ASCII letters, digits, `.`, `_` and `-`, each starting
    with a letter or digit (so no `.`/`..` segments and no absolute paths).
    """
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not _KEY_RE.match(key):
        raise ValueError(
            f"invalid blob key {key!r}: keys are '/'-separated segments of [A-Za-z0-9._-] "
            f"starting with a letter or digit, at most {MAX_KEY_LENGTH} characters"
        )
    return key


async def iter_data(data: bytes | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield `data` as chunks, whether it is bytes or an async iterable of bytes."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = bytes(data)
        for start in range(0, len(view), CHUNK_SIZE):
            yield view[start : start + CHUNK_SIZE]
        return
    async for chunk in data:
        if chunk:
            yield bytes(chunk)


def too_large(max_size: int) -> AttachmentTooLargeError:
    return AttachmentTooLargeError(f"upload exceeds the limit of {max_size} bytes")


@runtime_checkable
class BlobStorage(Protocol):
    """Async storage of byte blobs under keys that chatkit-kit generates.

    Writes are all-or-nothing: a failed or over-size `put` leaves no blob and keeps any blob that
    was already stored under the key.
    """

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> BlobInfo:
        """Store `data` under `key`, replacing any blob there.

        Raises AttachmentTooLargeError as soon as more than `max_size` bytes have arrived.
        """
        ...

    async def get(self, key: str) -> bytes:
        """Return the whole blob; BlobNotFoundError when there is none."""
        ...

    def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """Yield the blob in chunks; BlobNotFoundError (on first iteration) when there is none."""
        ...

    async def stat(self, key: str) -> BlobInfo | None:
        """Return the blob's size and type, or None when there is no blob."""
        ...

    async def delete(self, key: str) -> None:
        """Delete the blob; a missing blob is a no-op."""
        ...


class LocalBlobStorage:
    """Blobs as files under one directory; writes go to a temporary file, then an atomic rename."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).resolve()

    def path_of(self, key: str) -> Path:
        """Return the file path of `key`, which is always inside `directory`.

        Resolves symlinks, so it touches the file system: call it off the event loop.
        """
        path = (self.directory / check_key(key)).resolve()
        if not path.is_relative_to(self.directory) or path == self.directory:
            raise ValueError(f"blob key {key!r} resolves outside {self.directory}")
        return path

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> BlobInfo:
        check_key(key)
        path, temp, file = await asyncio.to_thread(self._open_temp, key)
        size = 0
        try:
            async for chunk in iter_data(data):
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise too_large(max_size)
                await asyncio.to_thread(file.write, chunk)
            stat = await asyncio.to_thread(_commit, file, temp, path)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(_discard, file, temp))
            raise
        return BlobInfo(size, None, datetime.fromtimestamp(stat.st_mtime, timezone.utc))

    def _open_temp(self, key: str) -> tuple[Path, Path, IO[bytes]]:
        path = self.path_of(key)
        temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        temp.parent.mkdir(parents=True, exist_ok=True)
        return path, temp, temp.open("xb")

    async def get(self, key: str) -> bytes:
        check_key(key)
        try:
            return await asyncio.to_thread(lambda: self.path_of(key).read_bytes())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFoundError(f"no blob stored under {key!r}") from None

    async def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        check_key(key)
        try:
            file = await asyncio.to_thread(lambda: self.path_of(key).open("rb"))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFoundError(f"no blob stored under {key!r}") from None
        try:
            while chunk := await asyncio.to_thread(file.read, chunk_size):
                yield chunk
        finally:
            # Closing synchronously also works when the generator is closed by the collector.
            file.close()

    async def stat(self, key: str) -> BlobInfo | None:
        check_key(key)
        stat = await asyncio.to_thread(self._stat_file, key)
        if stat is None:
            return None
        return BlobInfo(stat.st_size, None, datetime.fromtimestamp(stat.st_mtime, timezone.utc))

    def _stat_file(self, key: str) -> os.stat_result | None:
        path = self.path_of(key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return stat if S_ISREG(stat.st_mode) else None

    async def delete(self, key: str) -> None:
        check_key(key)
        await asyncio.to_thread(lambda: self.path_of(key).unlink(missing_ok=True))


def _commit(file: IO[bytes], temp: Path, path: Path) -> os.stat_result:
    file.flush()
    os.fsync(file.fileno())
    file.close()
    os.replace(temp, path)
    return path.stat()


def _discard(file: IO[bytes], temp: Path) -> None:
    file.close()
    temp.unlink(missing_ok=True)
