"""A small async blob-storage interface and its local-directory implementation."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from stat import S_ISREG
from typing import IO, Any, Protocol, TypeVar, runtime_checkable

from chatkit.store import NotFoundError

from .._chunks import CHUNK_SIZE, iter_data
from ..errors import AttachmentStorageError, AttachmentStorageUnavailableError
from ._errors import AttachmentTooLargeError

T = TypeVar("T")

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


@runtime_checkable
class OwnerBlobStorage(BlobStorage, Protocol):
    """A `BlobStorage` that needs each blob's owner to write it (e.g.
    `chatkit_kit.encryption.EncryptedBlobStorage`, which encrypts under the owner's data key).

    The attachment backends write with `put_for_owner` when their storage has it.
    """

    async def put_for_owner(
        self,
        owner: str,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> BlobInfo:
        """`put` for the owner key `owner` (the string that scopes the owner's rows)."""
        ...


WRITE_BUFFER = 1024 * 1024
"""Bytes `LocalBlobStorage.put` gathers in memory before it writes them in one worker-thread hop
(a blob up to this size costs one hop in all: open, write, fsync, rename)."""


_TRANSIENT = frozenset(
    code
    for code in (
        errno.ENOSPC,  # disk full
        getattr(errno, "EDQUOT", None),  # quota exceeded
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.ENOMEM,
        errno.EMFILE,  # out of file descriptors
        errno.ENFILE,
        errno.ETIMEDOUT,  # a network file system
        getattr(errno, "ESTALE", None),
    )
    if code is not None
)


def local_storage_error(error: OSError, action: str, directory: Path) -> AttachmentStorageError:
    """The `chatkit_kit.errors` error for a file system failure of LocalBlobStorage.

    Disk full, quota, I/O errors and exhausted descriptors may pass: AttachmentStorageUnavailable
    (503 + Retry-After at the endpoint). Anything else (permission denied, a read-only file
    system, a missing or non-directory path) needs the operator: AttachmentStorageError.
    """
    cause = f"{type(error).__name__}: {error.strerror or error}"
    if error.errno in _TRANSIENT:
        return AttachmentStorageUnavailableError(
            f"the attachment directory {directory} could not {action} ({cause}); retry later "
            "(free disk space or raise the quota if it is full)"
        )
    return AttachmentStorageError(
        f"the attachment directory {directory} could not {action} ({cause}); check that it "
        "exists, is a directory on a writable file system and that this process may read and "
        "write it"
    )


class LocalBlobStorage:
    """Blobs as files under one directory; writes go to a temporary file, then an atomic rename.

    With `durable=True` (the default) a `put` returns only once the blob survives a crash of the
    machine: the file is fsynced once, before the rename, and its directory after it (without
    the first a crash can leave an empty file under the new name; without the second, no file).
    Nothing is fsynced per chunk. `durable=False` skips both fsyncs: the blob is complete and
    atomic for every reader, but the last seconds of writes can be lost in a power cut or kernel
    crash (caches, tests). Deletes are never fsynced: a crash can bring a deleted blob back,
    never lose one that was kept.

    File system failures never escape as `OSError`: a full disk or quota, I/O errors and
    exhausted file descriptors raise `AttachmentStorageUnavailableError` (retry later);
    permission denied, a read-only file system or a path that is not a directory raise
    `AttachmentStorageError` (fix the configuration). A failed `put` leaves no blob.
    """

    def __init__(self, directory: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.directory = Path(directory).resolve()
        self.durable = durable

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
        temp = _TempFile(self, key)
        buffered: list[bytes] = []
        pending = 0
        size = 0
        try:
            async for chunk in iter_data(data):
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise too_large(max_size)
                buffered.append(chunk)
                pending += len(chunk)
                if pending >= WRITE_BUFFER:
                    await self._on_disk(temp.write, buffered)
                    buffered = []
                    pending = 0
            stat = await self._on_disk(temp.commit, buffered)
        except BaseException:
            if temp.temp is not None:
                with contextlib.suppress(OSError):  # the first failure is the one to report
                    await _in_thread(temp.discard)
            raise
        return BlobInfo(size, None, datetime.fromtimestamp(stat.st_mtime, timezone.utc))

    async def _on_disk(self, function: Callable[..., T], *args: Any) -> T:
        """`_in_thread(function, *args)`, its file system failures as storage errors (the
        upload's own errors, e.g. a client that went away, pass as they are)."""
        try:
            return await _in_thread(function, *args)
        except OSError as error:
            raise local_storage_error(error, "store a blob", self.directory) from error

    async def get(self, key: str) -> bytes:
        check_key(key)
        try:
            return await asyncio.to_thread(lambda: self.path_of(key).read_bytes())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFoundError(f"no blob stored under {key!r}") from None
        except OSError as error:
            raise local_storage_error(error, "read a blob", self.directory) from error

    async def stream(self, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        check_key(key)
        try:
            file = await asyncio.to_thread(lambda: self.path_of(key).open("rb"))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFoundError(f"no blob stored under {key!r}") from None
        except OSError as error:
            raise local_storage_error(error, "read a blob", self.directory) from error
        try:
            while True:
                try:
                    chunk = await asyncio.to_thread(file.read, chunk_size)
                except OSError as error:
                    raise local_storage_error(error, "read a blob", self.directory) from error
                if not chunk:
                    break
                yield chunk
        finally:
            # Closing synchronously also works when the generator is closed by the collector.
            file.close()

    async def stat(self, key: str) -> BlobInfo | None:
        check_key(key)
        try:
            stat = await asyncio.to_thread(self._stat_file, key)
        except OSError as error:
            raise local_storage_error(error, "look a blob up", self.directory) from error
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
        try:
            await asyncio.to_thread(lambda: self.path_of(key).unlink(missing_ok=True))
        except (IsADirectoryError, NotADirectoryError):
            return  # no blob file under the key
        except OSError as error:
            raise local_storage_error(error, "delete a blob", self.directory) from error


async def _in_thread(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a worker thread; a cancellation waits for it to finish first.

    So a cancelled `put` never discards a temporary file a write in progress still uses.
    """
    future = asyncio.ensure_future(asyncio.to_thread(function, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait((future,))
        raise


class _TempFile:
    """The temporary file one `put` writes, opened by its first write (in a worker thread)."""

    def __init__(self, storage: LocalBlobStorage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.path: Path | None = None
        self.temp: Path | None = None
        self.file: IO[bytes] | None = None

    def _open(self) -> IO[bytes]:
        if self.file is None:
            path = self.path = self.storage.path_of(self.key)
            temp = self.temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            temp.parent.mkdir(parents=True, exist_ok=True)
            self.file = temp.open("xb")
        return self.file

    def write(self, chunks: list[bytes]) -> None:
        file = self._open()
        for chunk in chunks:
            file.write(chunk)

    def commit(self, chunks: list[bytes]) -> os.stat_result:
        self.write(chunks)
        file, temp, path = self.file, self.temp, self.path
        assert file is not None and temp is not None and path is not None
        file.flush()
        if self.storage.durable:
            os.fsync(file.fileno())
        file.close()
        os.replace(temp, path)
        self.file = self.temp = None
        if self.storage.durable:
            _fsync_directory(path.parent)
        return path.stat()

    def discard(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        if self.temp is not None:
            self.temp.unlink(missing_ok=True)
            self.temp = None


def _fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (where directories can be opened: not on Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
