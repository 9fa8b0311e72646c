"""`EncryptedBlobStorage` over `LocalBlobStorage`: attachment bytes encrypted on disk under their
owner's data key, read back whole or streamed; every tampering (a flipped byte, a truncation, a
copy under another key) a `DecryptionError`; erasing the owner shreds every copy of their blobs;
blobs of the first (KEK-wrapped) format still read and are upgraded by `rewrap_blobs`."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chatkit.types import FileAttachment
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chatkit_kit.attachments import (
    METADATA_KEY,
    AttachmentTooLargeError,
    BlobInfo,
    LocalBlobStorage,
    OwnerBlobStorage,
)
from chatkit_kit.encryption import (
    DataKeyDestroyedError,
    DecryptionError,
    EncryptedBlobStorage,
    EncryptedStore,
    LocalKeyProvider,
    rewrap_blobs,
    rotate_data_key,
    rotate_kek,
)
from chatkit_kit.encryption.blobs import FRAME, MAGIC_V1, _frame
from tests.stores.encryption_support import KEYRING, MARKER, encrypted_memory, provider

BODY = (MARKER.encode() + bytes(range(256))) * 700  # ~197 KB: four frames


async def chunks(data: bytes, size: int = 10_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def ctx(owner: str) -> dict[str, str]:
    return {"user_id": owner}


@pytest.fixture
def disk(tmp_path: Path) -> LocalBlobStorage:
    return LocalBlobStorage(tmp_path / "blobs", durable=False)


@pytest.fixture
def store() -> EncryptedStore[Any]:
    return encrypted_memory()


@pytest.fixture
def blobs(disk: LocalBlobStorage, store: EncryptedStore[Any]) -> EncryptedBlobStorage:
    return EncryptedBlobStorage(disk, store)


async def legacy_blob(disk: LocalBlobStorage, key: str, body: bytes) -> None:
    """A blob of the first format: its key wrapped by the provider's KEK, bound to `key`."""
    raw = os.urandom(32)
    kek_id, wrapped = await provider().wrap(raw, key)
    kek = kek_id.encode()
    aead = AESGCM(raw)
    frames = [body[i : i + FRAME] for i in range(0, len(body), FRAME)] or [b""]
    if len(frames[-1]) == FRAME:
        frames.append(b"")
    data = MAGIC_V1 + len(kek).to_bytes(2, "big") + kek + len(wrapped).to_bytes(2, "big")
    data += wrapped
    for index, frame in enumerate(frames):
        data += _frame(aead, key, index, frame, last=index == len(frames) - 1)
    await disk.put(key, data, content_type="application/octet-stream")


async def save_record(store: EncryptedStore[Any], owner: str, attachment_id: str, key: str) -> None:
    metadata = {METADATA_KEY: {"backend": "direct", "key": key, "size": len(BODY)}}
    attachment = FileAttachment(
        id=attachment_id, name="a.pdf", mime_type="application/pdf", metadata=metadata
    )
    await store.save_attachment(attachment, ctx(owner))


async def test_bytes_on_disk_are_encrypted_and_read_back(
    disk: LocalBlobStorage, blobs: EncryptedBlobStorage
) -> None:
    assert isinstance(blobs, OwnerBlobStorage)
    info = await blobs.put_for_owner("alice", "a/one", chunks(BODY), content_type="text/plain")
    assert info.size == len(BODY)
    stored = disk.path_of("a/one").read_bytes()
    assert MARKER.encode() not in stored and stored.startswith(b"ckblob2\n")
    assert b"alice" in stored[:64]  # the owner is in the header, as in a row's envelope
    assert await blobs.get("a/one") == BODY
    assert b"".join([c async for c in blobs.stream("a/one")]) == BODY
    stat = await blobs.stat("a/one")
    assert stat is not None and stat.size == len(BODY)
    for body in (b"", b"x", bytes(FRAME), bytes(2 * FRAME + 1)):  # edges of the frame count
        await blobs.put_for_owner("alice", "a/edge", body, content_type="text/plain")
        assert await blobs.get("a/edge") == body
        edge = await blobs.stat("a/edge")
        assert edge is not None and edge.size == len(body)
    assert await blobs.stat("a/missing") is None


async def test_a_plain_put_needs_the_owner(blobs: EncryptedBlobStorage) -> None:
    with pytest.raises(TypeError, match="put_for_owner"):
        await blobs.put("a/one", BODY, content_type="text/plain")
    with pytest.raises(TypeError, match="EncryptedStore"):
        EncryptedBlobStorage(blobs.storage, provider())  # type: ignore[arg-type]


async def test_tampering_is_a_decryption_error(
    disk: LocalBlobStorage, blobs: EncryptedBlobStorage
) -> None:
    await blobs.put_for_owner("alice", "a/one", BODY, content_type="application/pdf")
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
    with pytest.raises(DecryptionError, match="copied or altered"):  # its key is bound to it
        await blobs.get("a/two")
    with pytest.raises(DecryptionError, match="copied or altered"):
        await blobs.stat("a/two")


async def test_the_size_limit_counts_plaintext_and_leaves_no_blob(
    disk: LocalBlobStorage, blobs: EncryptedBlobStorage
) -> None:
    with pytest.raises(AttachmentTooLargeError):
        await blobs.put_for_owner(
            "alice", "a/big", chunks(BODY), content_type="text/plain", max_size=1000
        )
    assert await disk.stat("a/big") is None
    info = await blobs.put_for_owner(
        "alice", "a/fits", b"x" * 1000, content_type="text/plain", max_size=1000
    )
    assert info.size == 1000


async def test_erasing_an_owner_shreds_every_copy_of_their_blobs(
    tmp_path: Path, disk: LocalBlobStorage, store: EncryptedStore[Any], blobs: EncryptedBlobStorage
) -> None:
    await blobs.put_for_owner("alice", "a/one", BODY, content_type="text/plain")
    await blobs.put_for_owner("bob", "b/one", BODY, content_type="text/plain")
    backup = tmp_path / "backup"
    shutil.copytree(tmp_path / "blobs", backup)  # a backup of the blob files
    assert await store.erase_owner("alice") == 0
    shutil.rmtree(tmp_path / "blobs")
    shutil.copytree(backup, tmp_path / "blobs")  # ... restored after the erasure
    with pytest.raises(DataKeyDestroyedError, match="destroyed") as raised:
        await blobs.get("a/one")
    assert raised.value.owner == "alice" and raised.value.row_id == "a/one"
    with pytest.raises(DataKeyDestroyedError):
        await blobs.stat("a/one")
    with pytest.raises(DataKeyDestroyedError):
        _ = [c async for c in blobs.stream("a/one")]
    # Another process, with a cold cache, cannot read them either.
    fresh = EncryptedBlobStorage(disk, EncryptedStore(store.store, provider()))
    with pytest.raises(DataKeyDestroyedError):
        await fresh.get("a/one")
    assert await blobs.get("b/one") == BODY and await fresh.get("b/one") == BODY
    # Alice starts again: her new data key does not open the old blob.
    await blobs.put_for_owner("alice", "a/two", b"new", content_type="text/plain")
    assert await blobs.get("a/two") == b"new"
    with pytest.raises(DecryptionError):
        await blobs.get("a/one")


async def test_kek_rotation_leaves_every_blob_readable_and_upgrades_legacy_ones(
    disk: LocalBlobStorage, store: EncryptedStore[Any], blobs: EncryptedBlobStorage
) -> None:
    await blobs.put_for_owner("alice", "a/new", BODY, content_type="text/plain")
    await save_record(store, "alice", "atc_new", "a/new")
    await legacy_blob(disk, "a/old", BODY)
    await save_record(store, "alice", "atc_old", "a/old")
    await legacy_blob(disk, "b/old", b"bob's")
    await save_record(store, "bob", "atc_bob", "b/old")
    assert await blobs.get("a/old") == BODY  # the first format still reads
    stat = await blobs.stat("a/old")
    assert stat is not None and stat.size == len(BODY)
    current = disk.path_of("a/new").read_bytes()
    ring = LocalKeyProvider.new_keyring("k2", KEYRING)
    rotated = EncryptedStore(store.store, LocalKeyProvider.from_json(ring))
    report = await rotate_kek(rotated, blobs=EncryptedBlobStorage(disk, rotated))
    assert report.rewrapped == 2 and report.blobs_rewrapped == 2 and report.remaining == 0
    assert disk.path_of("a/new").read_bytes() == current  # a current blob is not rewritten
    for key in ("a/old", "b/old"):
        assert disk.path_of(key).read_bytes().startswith(b"ckblob2\n")
    only_new = json.loads(ring)
    del only_new["keys"]["k1"]
    reader = EncryptedStore(store.store, LocalKeyProvider.from_json(json.dumps(only_new)))
    after = EncryptedBlobStorage(disk, reader)
    assert await after.get("a/new") == BODY and await after.get("a/old") == BODY
    assert await after.get("b/old") == b"bob's"
    # Upgraded, the legacy blobs are crypto-shredded with their owner.
    await reader.erase_owner("alice")
    with pytest.raises(DataKeyDestroyedError):
        await after.get("a/old")
    assert await after.get("b/old") == b"bob's"


async def test_data_key_rotation_reseals_blob_keys_before_retiring(
    disk: LocalBlobStorage, store: EncryptedStore[Any], blobs: EncryptedBlobStorage
) -> None:
    await blobs.put_for_owner("alice", "a/one", BODY, content_type="text/plain")
    await save_record(store, "alice", "atc_one", "a/one")
    report = await rotate_data_key(store, "alice", retire=True, blobs=blobs)
    assert report.blobs_rewrapped == 1 and report.remaining == 0
    assert [k.version for k in await store.key_table.load_data_keys("alice")] == [2]
    assert await blobs.get("a/one") == BODY
    again = await rewrap_blobs(store, blobs, owner="alice")
    assert again.blobs_rewrapped == 0 and again.scanned == 1  # already under version 2


class CountingStorage(LocalBlobStorage):
    """Counts the stored bytes streamed out."""

    streamed = 0

    async def stream(self, key: str, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        async for chunk in super().stream(key, chunk_size):
            self.streamed += len(chunk)
            yield chunk


async def test_stat_reads_only_the_header(tmp_path: Path, store: EncryptedStore[Any]) -> None:
    counting = CountingStorage(tmp_path, durable=False)
    blobs = EncryptedBlobStorage(counting, store)
    await blobs.put_for_owner("alice", "a/one", BODY, content_type="text/plain")
    counting.streamed = 0
    info = await blobs.stat("a/one")
    assert isinstance(info, BlobInfo) and info.size == len(BODY)
    assert 0 < counting.streamed <= 1024 < len(BODY)
