"""`EncryptedBlobStorage`: attachment bytes encrypted by chatkit-kit before any `BlobStorage`
(meant for `LocalBlobStorage`: files on a disk that is not encrypted itself).

Each blob gets a fresh 256-bit key, wrapped by the key provider's KEK (bound to the blob's
storage key) and stored at the start of the blob; the bytes follow as AES-256-GCM frames of up
to 64 KiB, each bound to the storage key, its index and whether it is the last, so a frame
moved, dropped, reordered or a blob truncated or copied under another key fails with
`DecryptionError`. Streaming reads decrypt frame by frame (memory stays bounded).

    <magic "ckblob1\\n"> <u16 len> kek id <u16 len> wrapped key
    frames: <u32 plaintext length> <nonce 12> <ciphertext> <tag 16>

Sizes (`put`'s and `stat`'s `BlobInfo.size`) are plaintext sizes. Erasing an owner still
deletes the bytes through the attachment backend (`erase_owner(..., attachments=backend)`);
rotating the KEK leaves blobs as they are, so keep old KEKs in the provider while blobs wrapped
by them exist.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from .._chunks import iter_data
from ..attachments import AttachmentTooLargeError, BlobInfo, BlobStorage
from ..errors import DecryptionError
from . import _aead
from .provider import KeyProvider

MAGIC = b"ckblob1\n"
FRAME = 64 * 1024
_OVERHEAD = 4 + _aead.NONCE_BYTES + _aead.TAG_BYTES
_AAD = b"chatkit-kit/blob/1\x00"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_INDEX = struct.Struct(">QB")


def _aad(key: str, index: int, last: bool) -> bytes:
    return _AAD + key.encode() + b"\x00" + _INDEX.pack(index, 1 if last else 0)


def _corrupt(key: str, why: str) -> DecryptionError:
    return DecryptionError(f"the encrypted blob {key!r} {why}: it is not returned", row_id=key)


class _Reader:
    """Decrypts one blob from its stored chunks, frame by frame."""

    def __init__(self, storage: EncryptedBlobStorage, key: str) -> None:
        self.storage, self.key = storage, key
        self.buffer = bytearray()
        self.aead: Any = None
        self.index = 0
        self.done = False

    async def _header(self) -> bool:
        buffer = self.buffer
        if len(buffer) < len(MAGIC) + 2:
            return False
        if bytes(buffer[: len(MAGIC)]) != MAGIC:
            raise _corrupt(self.key, "is not a chatkit-kit encrypted blob")
        at = len(MAGIC)
        fields: list[bytes] = []
        for _ in range(2):
            if len(buffer) < at + 2:
                return False
            (length,) = _U16.unpack_from(buffer, at)
            if len(buffer) < at + 2 + length:
                return False
            fields.append(bytes(buffer[at + 2 : at + 2 + length]))
            at += 2 + length
        try:
            kek_id = fields[0].decode()
        except UnicodeDecodeError:
            raise _corrupt(self.key, "has a malformed header") from None
        raw = await self.storage.provider.unwrap(kek_id, fields[1], self.key)
        self.aead = _aead.cipher(raw)
        del buffer[:at]
        return True

    async def feed(self, chunk: bytes) -> list[bytes]:
        """Plaintext frames completed by `chunk`."""
        if self.done and chunk:
            raise _corrupt(self.key, "has bytes after its last frame")
        self.buffer += chunk
        if self.aead is None and not await self._header():
            return []
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
    """A `BlobStorage` that encrypts every blob before `storage` keeps it (see this module)."""

    def __init__(self, storage: BlobStorage, provider: KeyProvider) -> None:
        if not isinstance(storage, BlobStorage):
            raise TypeError(f"storage must be a BlobStorage, got {storage!r}")
        if not isinstance(provider, KeyProvider):
            raise TypeError(f"provider must implement KeyProvider, got {provider!r}")
        self.storage = storage
        self.provider = provider

    def __repr__(self) -> str:
        return f"EncryptedBlobStorage({self.storage!r}, {self.provider!r})"

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        content_type: str,
        max_size: int | None = None,
    ) -> BlobInfo:
        raw = _aead.new_key()
        kek_id, wrapped = await self.provider.wrap(raw, key)
        aead = _aead.cipher(raw)
        kek = kek_id.encode()
        header = MAGIC + _U16.pack(len(kek)) + kek + _U16.pack(len(wrapped)) + wrapped
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
        info = await self.storage.stat(key)
        if info is None:
            return None
        size = 0
        async for chunk in self.stream(key):
            size += len(chunk)
        return BlobInfo(size, info.content_type, info.modified)

    async def delete(self, key: str) -> None:
        await self.storage.delete(key)


def _frame(aead: Any, key: str, index: int, plain: bytes, *, last: bool) -> bytes:
    return _U32.pack(len(plain)) + _aead.seal(aead, plain, _aad(key, index, last))
