from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chatkit.store import NotFoundError

from chatkit_kit.attachments import AttachmentTooLargeError, BlobNotFoundError, LocalBlobStorage
from chatkit_kit.attachments._blobs import check_key
from chatkit_kit.errors import AttachmentStorageError, AttachmentStorageUnavailableError


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.parametrize(
    "key", ["", "/abs", "../x", "a/../b", "a//b", ".hidden", "a/./b", "a\\b", "a\x00b", "é"]
)
def test_keys_outside_the_generated_form_are_rejected(key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        check_key(key)


async def test_local_round_trip_and_idempotent_delete(tmp_path: Path) -> None:
    blobs = LocalBlobStorage(tmp_path)
    info = await blobs.put("o/k1", chunks(b"hello ", b"world"), content_type="text/plain")
    assert info.size == 11
    assert await blobs.get("o/k1") == b"hello world"
    assert b"".join([c async for c in blobs.stream("o/k1", chunk_size=4)]) == b"hello world"
    stat = await blobs.stat("o/k1")
    assert stat is not None and stat.size == 11
    await blobs.delete("o/k1")
    await blobs.delete("o/k1")
    assert await blobs.stat("o/k1") is None
    with pytest.raises(BlobNotFoundError):
        await blobs.get("o/k1")
    assert issubclass(BlobNotFoundError, NotFoundError)
    with pytest.raises(NotFoundError):
        [c async for c in blobs.stream("o/k1")]


async def test_local_over_size_write_leaves_nothing_and_keeps_old_blob(tmp_path: Path) -> None:
    blobs = LocalBlobStorage(tmp_path)
    await blobs.put("o/k", b"old", content_type="text/plain")
    with pytest.raises(AttachmentTooLargeError, match="limit of 4 bytes"):
        await blobs.put("o/k", chunks(b"abc", b"def"), content_type="text/plain", max_size=4)
    assert await blobs.get("o/k") == b"old"
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["k"]


async def test_local_failed_stream_leaves_no_temp_file(tmp_path: Path) -> None:
    blobs = LocalBlobStorage(tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b"part"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        await blobs.put("o/k", broken(), content_type="text/plain")
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


async def test_local_keys_stay_inside_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    blobs = LocalBlobStorage(root)
    with pytest.raises(ValueError, match="outside"):
        await blobs.put("link/x", b"data", content_type="text/plain")
    assert list((tmp_path / "outside").iterdir()) == []


async def test_s3_blob_storage_round_trip(s3_client: Any, bucket: str) -> None:
    from chatkit_kit.attachments import S3BlobStorage

    blobs = S3BlobStorage(s3_client, bucket)
    data = bytes(range(256)) * 5000
    info = await blobs.put("o/k", chunks(data[:1000], data[1000:]), content_type="image/png")
    assert info.size == len(data)
    stat = await blobs.stat("o/k")
    assert stat is not None and (stat.size, stat.content_type) == (len(data), "image/png")
    assert await blobs.get("o/k") == data
    assert b"".join([c async for c in blobs.stream("o/k")]) == data
    with pytest.raises(AttachmentTooLargeError):
        await blobs.put("o/k2", data, content_type="image/png", max_size=100)
    assert await blobs.stat("o/k2") is None
    await blobs.delete("o/k")
    await blobs.delete("o/k")
    assert await blobs.stat("o/k") is None
    with pytest.raises(BlobNotFoundError):
        await blobs.get("o/k")


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every function LocalBlobStorage runs in a worker thread, and every fsync."""
    import asyncio
    import os

    seen: list[str] = []
    to_thread = asyncio.to_thread
    fsync = os.fsync

    async def counting_to_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(function, "__name__", repr(function)))
        return await to_thread(function, *args, **kwargs)

    def counting_fsync(fd: int) -> None:
        seen.append("fsync")
        fsync(fd)

    monkeypatch.setattr(asyncio, "to_thread", counting_to_thread)
    monkeypatch.setattr(os, "fsync", counting_fsync)
    return seen


async def test_a_small_blob_in_many_chunks_is_one_thread_hop_and_one_fsync_each_way(
    tmp_path: Path, hops: list[str]
) -> None:
    blobs = LocalBlobStorage(tmp_path)
    parts = [bytes([n]) * 4096 for n in range(32)]  # 128 KiB in 4 KiB chunks
    info = await blobs.put("o/small", chunks(*parts), content_type="text/plain")
    assert info.size == 32 * 4096
    # One hop: open, write, fsync of the file, rename, fsync of the directory.
    assert hops == ["commit", "fsync", "fsync"]
    assert (tmp_path / "o" / "small").read_bytes() == b"".join(parts)


async def test_a_large_blob_is_written_in_megabyte_hops(tmp_path: Path, hops: list[str]) -> None:
    from chatkit_kit.attachments._blobs import WRITE_BUFFER

    blobs = LocalBlobStorage(tmp_path)
    parts = [bytes([n % 251]) * 65536 for n in range(48)]  # 3 MiB in 64 KiB chunks
    await blobs.put("o/large", chunks(*parts), content_type="application/octet-stream")
    writes = hops.count("write") + hops.count("commit")
    # One hop per buffer (and the commit), not one per 64 KiB chunk (48).
    assert writes <= -(-len(parts) * 65536 // WRITE_BUFFER) + 1
    assert hops.count("fsync") == 2
    assert (tmp_path / "o" / "large").read_bytes() == b"".join(parts)


async def test_a_storage_that_is_not_durable_never_fsyncs(tmp_path: Path, hops: list[str]) -> None:
    blobs = LocalBlobStorage(tmp_path, durable=False)
    await blobs.put("o/k", chunks(b"a" * 10, b"b" * 10), content_type="text/plain")
    assert hops == ["commit"]
    assert await blobs.get("o/k") == b"a" * 10 + b"b" * 10


async def test_a_cancelled_put_leaves_no_temp_file(tmp_path: Path) -> None:
    import asyncio

    started = asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        from chatkit_kit.attachments._blobs import WRITE_BUFFER

        yield b"x" * WRITE_BUFFER  # written to the temporary file in its own hop
        started.set()
        await asyncio.sleep(30)
        yield b"never"

    blobs = LocalBlobStorage(tmp_path)
    task = asyncio.ensure_future(blobs.put("o/k", slow(), content_type="text/plain"))
    await asyncio.wait_for(started.wait(), 10)
    assert next(p.name for p in (tmp_path / "o").iterdir()).endswith(".tmp")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list((tmp_path / "o").iterdir()) == []


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (errno.ENOSPC, AttachmentStorageUnavailableError),  # disk full
        (errno.EDQUOT, AttachmentStorageUnavailableError),  # quota
        (errno.EIO, AttachmentStorageUnavailableError),
        (errno.EACCES, AttachmentStorageError),  # permission denied
        (errno.EROFS, AttachmentStorageError),  # read-only file system
    ],
    ids=errno.errorcode.get,
)
async def test_local_file_system_failures_are_storage_errors_not_os_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, kind: type[Exception]
) -> None:
    """The kernel's answer at fsync (where a full disk or quota shows on delayed-allocation and
    network file systems): never a raw OSError; the failed put leaves no blob, no temp file,
    and the old blob."""
    blobs = LocalBlobStorage(tmp_path)
    await blobs.put("o/k", b"old", content_type="text/plain")

    def failing_fsync(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(AttachmentStorageError) as raised:
        await blobs.put("o/k", chunks(b"new" * 100), content_type="text/plain")
    assert type(raised.value) is kind, repr(raised.value)
    assert raised.value.retryable is (kind is AttachmentStorageUnavailableError)
    assert isinstance(raised.value.__cause__, OSError)
    assert str(tmp_path) in str(raised.value) and os.strerror(code) in str(raised.value)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["k"]
    assert await blobs.get("o/k") == b"old"


async def test_a_storage_directory_that_is_a_file_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    """A real failure: the configured directory (or a key's parent) is a regular file."""
    not_a_directory = tmp_path / "blobs"
    not_a_directory.write_bytes(b"")
    blobs = LocalBlobStorage(not_a_directory)
    with pytest.raises(AttachmentStorageError) as raised:
        await blobs.put("o/k", b"x", content_type="text/plain")
    assert type(raised.value) is AttachmentStorageError and not raised.value.retryable
    assert "check that it exists, is a directory" in str(raised.value)
    with pytest.raises(BlobNotFoundError):  # nothing can be stored there: nothing is
        await blobs.get("o/k")
    assert await blobs.stat("o/k") is None
    await blobs.delete("o/k")


async def test_local_read_failures_are_storage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = LocalBlobStorage(tmp_path, durable=False)
    await blobs.put("o/k", b"x" * 10, content_type="text/plain")
    real_open = Path.open

    def failing_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.name == "k":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", failing_open)
    monkeypatch.setattr(Path, "read_bytes", lambda self: failing_open(self))
    with pytest.raises(AttachmentStorageError, match="could not read a blob"):
        await blobs.get("o/k")
    with pytest.raises(AttachmentStorageError, match="could not read a blob"):
        _ = [c async for c in blobs.stream("o/k")]
