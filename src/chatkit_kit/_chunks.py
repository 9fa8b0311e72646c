"""Upload bodies as chunks, as every blob backend (local disk, S3, the encrypting one) reads."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

CHUNK_SIZE = 64 * 1024
"""Bytes given all at once are handed on in pieces of this size."""


async def iter_data(data: bytes | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield `data` as chunks, whether it is bytes or an async iterable of bytes (empty chunks
    of an iterable are skipped)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = bytes(data)
        for start in range(0, len(view), CHUNK_SIZE):
            yield view[start : start + CHUNK_SIZE]
        return
    async for chunk in data:
        if chunk:
            yield bytes(chunk)
