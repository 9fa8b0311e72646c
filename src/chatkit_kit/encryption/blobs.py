"""`EncryptedBlobStorage`: attachment bytes encrypted by chatkit-kit before any `BlobStorage`
(meant for `LocalBlobStorage`: files on a disk that is not encrypted itself).

Each blob gets a fresh 256-bit key, sealed under the current **data key of the blob's owner**
(the `EncryptedStore`'s, bound to the owner, the blob's storage key and the data-key version)
and stored at the start of the blob; the bytes follow as AES-256-GCM frames of up to 64 KiB,
each bound to the storage key, its index and whether it is the last, so a frame moved, dropped,
reordered or a blob truncated or copied under another key fails with `DecryptionError`.
Streaming reads decrypt frame by frame (memory stays bounded).

    <magic "ckblob2\\n"> <u32 data-key version> <u16 len> owner <u16 len> sealed blob key
    frames: <u32 plaintext length> <nonce 12> <ciphertext> <tag 16>

Because the blob key is sealed by the owner's data key, `erase_owner` (which destroys the data
keys) makes every copy of the owner's blobs unreadable (`DataKeyDestroyedError`), and a KEK
rotation needs no blob rewrite (the data keys are rewrapped). An owner's data-key rotation with
`retire=True` needs `blobs=` (`rotate_data_key(..., blobs=...)`), which reseals each blob key
under the new version (a header rewrite, the frames are copied as they are).

Blobs of the first format (`ckblob1`: the blob key wrapped by the provider's KEK, not by the
owner's key, so not crypto-shredded) still read; `upgrade_blobs` (or `rotate_kek(...,
blobs=...)`) moves them to the owner's data key.

Sizes (`put`'s and `stat`'s `BlobInfo.size`) are plaintext sizes; `stat` reads only the header
(the size follows from the stored size).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from .._chunks import iter_data
from ..attachments import AttachmentTooLargeError, BlobInfo, BlobStorage
from ..errors import DataKeyDestroyedError, DecryptionError
from ..stores import check_owner
from . import _aead
from .cache import OwnerKeys

if TYPE_CHECKING:
    from .store import EncryptedStore

MAGIC_V1 = b"ckblob1\n"
MAGIC = b"ckblob2\n"
FRAME = 64 * 1024
_OVERHEAD = 4 + _aead.NONCE_BYTES + _aead.TAG_BYTES
_AAD = b"chatkit-kit/blob/1\x00"
_KEY_AAD = b"chatkit-kit/blob-key/2\x00"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_INDEX = struct.Struct(">QB")
_HEADER_READ = 1024
"""Bytes `stat` and `rewrap` read from the start of a blob to find its header."""


def _aad(key: str, index: int, last: bool) -> bytes:
    return _AAD + key.encode() + b"\x00" + _INDEX.pack(index, 1 if last else 0)


def _key_aad(owner: str, key: str, version: int) -> bytes:
    return _KEY_AAD + owner.encode() + b"\x00" + key.encode() + b"\x00" + _U32.pack(version)


def _corrupt(key: str, why: str) -> DecryptionError:
    return DecryptionError(f"the encrypted blob {key!r} {why}: it is not returned", row_id=key)


def plaintext_size(stored_body: int, key: str = "") -> int:
    """The plaintext size of frames taking `stored_body` bytes (every frame but the last is
    full, and there is at least one)."""
    frames = -(-stored_body // (FRAME + _OVERHEAD))
    size = stored_body - frames * _OVERHEAD
    if frames < 1 or size < 0:
        raise _corrupt(key, "is truncated")
    return size


class _Header:
    """A parsed blob header: its format, its length in bytes and its key fields."""

    __slots__ = ("kek_id", "legacy", "length", "owner", "version", "wrapped")

    def __init__(
        self, legacy: bool, length: int, kek_id: str, version: int, owner: str, wrapped: bytes
    ) -> None:
        self.legacy, self.length, self.kek_id = legacy, length, kek_id
        self.version, self.owner, self.wrapped = version, owner, wrapped


def _parse_header(buffer: bytes | bytearray, key: str) -> _Header | None:
    """The header at the start of `buffer`, None while more bytes are needed."""
    if len(buffer) < len(MAGIC):
        return None
    magic = bytes(buffer[: len(MAGIC)])
    if magic not in (MAGIC, MAGIC_V1):
        raise _corrupt(key, "is not a chatkit-kit encrypted blob")
    legacy = magic == MAGIC_V1
    at = len(MAGIC)
    version = 0
    if not legacy:
        if len(buffer) < at + 4:
            return None
        (version,) = _U32.unpack_from(buffer, at)
        at += 4
    fields: list[bytes] = []
    for _ in range(2):
        if len(buffer) < at + 2:
            return None
        (length,) = _U16.unpack_from(buffer, at)
        if len(buffer) < at + 2 + length:
            return None
        fields.append(bytes(buffer[at + 2 : at + 2 + length]))
        at += 2 + length
    try:
        name = fields[0].decode()
    except UnicodeDecodeError:
        raise _corrupt(key, "has a malformed header") from None
    if legacy:
        return _Header(True, at, name, 0, "", fields[1])
    return _Header(False, at, "", version, name, fields[1])


class _Reader:
    """Decrypts one blob from its stored chunks, frame by frame."""

    def __init__(self, storage: EncryptedBlobStorage, key: str) -> None:
        self.storage, self.key = storage, key
        self.buffer = bytearray()
        self.aead: Any = None
        self.index = 0
        self.done = False

    async def feed(self, chunk: bytes) -> list[bytes]:
        """Plaintext frames completed by `chunk`."""
        if self.done and chunk:
            raise _corrupt(self.key, "has bytes after its last frame")
        self.buffer += chunk
        if self.aead is None:
            header = _parse_header(self.buffer, self.key)
            if header is None:
                return []
            self.aead = _aead.cipher(await self.storage._blob_key(self.key, header))
            del self.buffer[: header.length]
        out: list[bytes] = []
        buffer = self.buffer
        while len(buffer) >= 4 and not self.done:
            (length,) = _U32.unpack_from(buffer, 0)
            if length > FRAME:
                raise _corrupt(self.key, "has a malformed frame")
            end = _OVERHEAD + length
            if len(buffer) < end:
                break
            sealed = bytes(buffer[4:end])
            del buffer[:end]
            last = not buffer and length < FRAME  # provisional; confirmed by the tag
            for candidate in (last, not last):
                try:
                    plain = _aead.open_sealed(
                        self.aead, sealed, _aad(self.key, self.index, candidate)
                    )
                except _aead.InvalidTag:
                    continue
                self.done = candidate
                break
            else:
                raise _corrupt(self.key, "was altered, truncated or copied from another key")
            self.index += 1
            out.append(plain)
        return out

    def finish(self) -> None:
        if not self.done:
            raise _corrupt(self.key, "is truncated")


class EncryptedBlobStorage:
    """A `BlobStorage` that encrypts every blob under its owner's data key before `storage`
    keeps it (see this module). `store` is the app's `EncryptedStore`: the owners' data keys.

    Writes need the owner: `put_for_owner(owner, key, data, ...)`, which the attachment backends
    (`DirectUploadAttachmentStore`) call for a storage that has it; a plain `put` raises
    `TypeError`. Reads find the owner in the blob's header.
    """

    def __init__(self, storage: BlobStorage, store: EncryptedStore[Any]) -> None:
        from .store import EncryptedStore

        if not isinstance(storage, BlobStorage):
            raise TypeError(f"storage must be a BlobStorage, got {storage!r}")
        if not isinstance(store, EncryptedStore):
            raise TypeError(
                "EncryptedBlobStorage takes the app's EncryptedStore (the owners' data keys "
                f"encrypt the blob keys), got {store!r}"
            )
        self.storage = storage
        self.store = store

    @property
    def provider(self) -> Any:
        """The store's key provider (it unwraps blobs of the first, KEK-wrapped format)."""
        return self.store.provider

    def __repr__(self) -> str:
        return f"EncryptedBlobStorage({self.storage!r}, {self.store!r})"

    # Blob keys

    async def _owner_keys(self, owner: str, version: int, key: str) -> Any:
        """`owner`'s data key `version` (reloaded once if missing: a rotation elsewhere)."""
        keys: OwnerKeys = await self.store.load_keys(owner)
        aead = keys.ciphers.get(version)
        if aead is None:
            keys = await self.store.load_keys(owner, refresh=True)
            aead = keys.ciphers.get(version)
        if aead is None:
            raise DataKeyDestroyedError(
                f"the data key of owner {owner!r} that encrypts blob {key!r} was destroyed "
                "(crypto-shredded, e.g. by erase_owner): its bytes can never be read again",
                owner=owner,
                row_id=key,
            )
        return aead

    async def _blob_key(self, key: str, header: _Header) -> bytes:
        if header.legacy:
            raw: bytes = await self.provider.unwrap(header.kek_id, header.wrapped, key)
            return raw
        aead = await self._owner_keys(header.owner, header.version, key)
        try:
            return _aead.open_sealed(
                aead, header.wrapped, _key_aad(header.owner, key, header.version)
            )
        except _aead.InvalidTag:
            raise _corrupt(key, "has a blob key that does not open (copied or altered)") from None

    async def _seal_key(self, owner: str, key: str, raw: bytes) -> bytes:
        """The current-format header sealing `raw` under `owner`'s current data key."""
        keys = await self.store._write_keys(owner)
        version = keys.current
        assert version is not None
        wrapped = _aead.seal(keys.ciphers[version], raw, _key_aad(owner, key, version))
        owner_b = owner.encode()
        return (
            MAGIC
            + _U32.pack(version)
            + _U16.pack(len(owner_b))
            + owner_b
            + _U16.pack(len(wrapped))
            + wrapped
        )

    async def _read_header(self, key: str) -> _Header | None:
        """The header of the stored blob (None when there is no blob)."""
        head = bytearray()
        chunks = self.storage.stream(key, _HEADER_READ)
        try:
            async for chunk in chunks:
                head += chunk
                header = _parse_header(head, key)
                if header is not None:
                    return header
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        if not head:
            return None
        raise _corrupt(key, "is truncated")

    # BlobStorage

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> BlobInfo:
        raise TypeError(
            "EncryptedBlobStorage encrypts each blob under its owner's data key: write with "
            "put_for_owner(owner, key, data, ...) (DirectUploadAttachmentStore does)"
        )

    async def put_for_owner(
        self,
        owner: str,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> BlobInfo:
        """Store `data` under `key`, encrypted for `owner` (creating their data key if new)."""
        raw = _aead.new_key()
        header = await self._seal_key(check_owner(owner), key, raw)
        aead = _aead.cipher(raw)
        size = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal size
            yield header
            pending = bytearray()
            index = 0
            held: bytes | None = None  # one full frame held back: is it the last?
            async for chunk in iter_data(data):
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise AttachmentTooLargeError(f"upload exceeds the limit of {max_size} bytes")
                pending += chunk
                while len(pending) >= FRAME:
                    if held is not None:
                        yield _frame(aead, key, index, held, last=False)
                        index += 1
                    held = bytes(pending[:FRAME])
                    del pending[:FRAME]
            if pending or held is None:
                if held is not None:
                    yield _frame(aead, key, index, held, last=False)
                    index += 1
                yield _frame(aead, key, index, bytes(pending), last=True)
            else:
                yield _frame(aead, key, index, held, last=True)

        info = await self.storage.put(key, chunks(), content_type=content_type)
        return BlobInfo(size, info.content_type, info.modified)

    async def get(self, key: str) -> bytes:
        return b"".join([chunk async for chunk in self.stream(key)])

    async def stream(self, key: str, chunk_size: int = FRAME) -> AsyncIterator[bytes]:
        reader = _Reader(self, key)
        async for chunk in self.storage.stream(key, chunk_size):
            for plain in await reader.feed(chunk):
                if plain:
                    yield plain
        reader.finish()

    async def stat(self, key: str) -> BlobInfo | None:
        """Size (plaintext) and type, from the header and the stored size: the blob key is
        opened (a shredded owner's blob raises `DataKeyDestroyedError`), the frames are not
        read (a truncated or altered frame fails on `get` or `stream`)."""
        info = await self.storage.stat(key)
        if info is None:
            return None
        header = await self._read_header(key)
        if header is None:
            return None
        await self._blob_key(key, header)
        size = plaintext_size(info.size - header.length, key)
        return BlobInfo(size, info.content_type, info.modified)

    async def delete(self, key: str) -> None:
        await self.storage.delete(key)

    # Moving blob keys to a new data key or format

    async def rewrap(
        self, key: str, owner: str | None = None, *, legacy_only: bool = False
    ) -> bool:
        """Seal the blob key of `key` under its owner's current data key (the frames are
        copied unchanged); whether the blob was rewritten. A blob of the first format
        (KEK-wrapped) needs its `owner` and is upgraded; a current-format blob already under
        the owner's current data key (or any, with `legacy_only`) is left alone, as is a
        missing blob. Do not run it while the blob may be deleted: a delete in between is
        undone."""
        header = await self._read_header(key)
        if header is None:
            return False
        if header.legacy:
            if owner is None:
                raise ValueError(f"blob {key!r} is of the first format: pass its owner")
            owner = check_owner(owner)
        else:
            if owner is not None and owner != header.owner:
                raise _corrupt(key, f"belongs to another owner than {owner!r}")
            owner = header.owner
            if legacy_only:
                return False
            current = (await self.store._write_keys(owner)).current
            if header.version == current:
                return False
        raw = await self._blob_key(key, header)
        new_header = await self._seal_key(owner, key, raw)
        info = await self.storage.stat(key)
        if info is None:
            return False

        async def chunks() -> AsyncIterator[bytes]:
            yield new_header
            skip = header.length
            async for chunk in self.storage.stream(key, FRAME):
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                if chunk:
                    yield chunk

        content_type = info.content_type or "application/octet-stream"
        await self.storage.put(key, chunks(), content_type=content_type)
        return True


def _frame(aead: Any, key: str, index: int, plain: bytes, *, last: bool) -> bytes:
    return _U32.pack(len(plain)) + _aead.seal(aead, plain, _aad(key, index, last))
