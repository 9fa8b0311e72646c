"""`EncryptedBlobStorage` over `LocalBlobStorage`: attachment bytes encrypted on disk, read back
whole or streamed, and every tampering (a flipped byte, a truncation, a copy under another
key) a `DecryptionError`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatkit_kit.attachments import AttachmentTooLargeError, LocalBlobStorage
from chatkit_kit.encryption import DecryptionError, EncryptedBlobStorage, KeyProviderError
from tests.stores.encryption_support import MARKER, provider

BODY = (MARKER.encode() + bytes(range(256))) * 700  # ~197 KB: four frames


async def chunks(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def disk(tmp_path: Path) -> LocalBlobStorage:
    return LocalBlobStorage(tmp_path, durable=False)


async def test_bytes_on_disk_are_encrypted_and_read_back(disk: LocalBlobStorage) -> None:
    blobs = EncryptedBlobStorage(disk, provider())
    info = await blobs.put("a/one", chunks(BODY), content_type="application/pdf")
    assert info.size == len(BODY)
    stored = disk.path_of("a/one").read_bytes()
    assert MARKER.encode() not in stored and stored.startswith(b"ckblob1\n")
    assert await blobs.get("a/one") == BODY
    assert b"".join([c async for c in blobs.stream("a/one")]) == BODY
    stat = await blobs.stat("a/one")
    assert stat is not None and stat.size == len(BODY)
    for body in (b"", b"x", bytes(64 * 1024)):  # empty, tiny, exactly one frame
        await blobs.put("a/edge", body, content_type="text/plain")
        assert await blobs.get("a/edge") == body


async def test_tampering_is_a_decryption_error(disk: LocalBlobStorage) -> None:
    blobs = EncryptedBlobStorage(disk, provider())
    await blobs.put("a/one", BODY, content_type="application/pdf")
    path = disk.path_of("a/one")
    stored = path.read_bytes()
    flipped = bytearray(stored)
    flipped[len(stored) // 2] ^= 1
    path.write_bytes(bytes(flipped))
    with pytest.raises(DecryptionError):
        await blobs.get("a/one")
    path.write_bytes(stored[: len(stored) - 70_000])  # whole frames dropped at the end
    with pytest.raises(DecryptionError):
        await blobs.get("a/one")
    disk.path_of("a/two").parent.mkdir(parents=True, exist_ok=True)
    disk.path_of("a/two").write_bytes(stored)  # copied under another key
    with pytest.raises(KeyProviderError, match="does not unwrap"):  # the key is bound to it
        await blobs.get("a/two")


async def test_the_size_limit_counts_plaintext_and_leaves_no_blob(disk: LocalBlobStorage) -> None:
    blobs = EncryptedBlobStorage(disk, provider())
    with pytest.raises(AttachmentTooLargeError):
        await blobs.put("a/big", chunks(BODY), content_type="text/plain", max_size=1000)
    assert await disk.stat("a/big") is None
    info = await blobs.put("a/fits", b"x" * 1000, content_type="text/plain", max_size=1000)
    assert info.size == 1000
