"""A streaming reader for the `file` part of a multipart/form-data upload body.

The upload route of `DirectUploadAttachmentStore` reads the file's bytes as they arrive, without
buffering the body: `MultipartFileReader.open()` skips to the `file` part and returns its name
and type, `data()` yields its bytes and then checks that the body is complete. Everything a
body may carry besides the file is bounded (`MULTIPART_OVERHEAD` bytes, `MAX_PARTS` parts).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from .._optional import require
from ._errors import AttachmentTooLargeError, InvalidUploadError

require("python_multipart", "server")

from python_multipart.exceptions import MultipartParseError  # noqa: E402
from python_multipart.multipart import MultipartParser, parse_options_header  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from python_multipart.multipart import MultipartCallbacks

__all__ = [
    "MAX_PARTS",
    "MULTIPART_OVERHEAD",
    "MultipartFileReader",
    "boundary_of",
    "capped",
    "is_multipart",
]

MULTIPART_OVERHEAD = 64 * 1024
"""Bytes a multipart body may carry besides the file's own bytes (boundaries, headers, other
fields); a body larger than `max_size` plus this is cut off with 413."""

MAX_PARTS = 16
"""Most parts a multipart body may have before the `file` part."""


def is_multipart(content_type: str) -> bool:
    """Whether a Content-Type header value is multipart/form-data."""
    essence, _ = parse_options_header(content_type)
    # Media types are case-insensitive; python-multipart lowercases them only since 0.0.33.
    return essence.lower() == b"multipart/form-data"


def boundary_of(content_type: str) -> bytes:
    """The boundary of a multipart/form-data Content-Type; InvalidUploadError if it has none."""
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidUploadError("multipart/form-data without a boundary")
    return boundary


class MultipartFileReader:
    """Reads the first `file` part of a multipart/form-data stream without buffering it."""

    def __init__(self, chunks: AsyncIterator[bytes], boundary: bytes) -> None:
        self._chunks = chunks
        self._events: deque[tuple[str, Any]] = deque()
        self._headers: dict[bytes, bytes] = {}
        self._field = b""
        self._value = b""
        self._other_bytes = 0
        callbacks: MultipartCallbacks = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }
        self._parser = MultipartParser(boundary, callbacks)

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[self._field.strip().lower()] = self._value.strip()
        self._field = self._value = b""

    def _on_headers_finished(self) -> None:
        self._events.append(("headers", self._headers))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        self._events.append(("data", bytes(data[start:end])))

    def _on_part_end(self) -> None:
        self._events.append(("part_end", None))

    def _on_end(self) -> None:
        self._events.append(("end", None))

    async def _next(self) -> tuple[str, Any]:
        while not self._events:
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                raise InvalidUploadError(
                    "the multipart body ended before its closing boundary (truncated upload)"
                ) from None
            try:
                self._parser.write(chunk)
            except MultipartParseError as exc:
                raise InvalidUploadError(f"malformed multipart body: {exc}") from None
        return self._events.popleft()

    def _count_other(self, size: int) -> None:
        self._other_bytes += size
        if self._other_bytes > MULTIPART_OVERHEAD:
            raise AttachmentTooLargeError(
                f"multipart fields besides 'file' exceed {MULTIPART_OVERHEAD} bytes"
            )

    async def open(self) -> tuple[str, str]:
        """Skip to the `file` part; return its file name and Content-Type."""
        parts = 0
        while True:
            kind, value = await self._next()
            if kind == "headers":
                parts += 1
                if parts > MAX_PARTS:
                    raise InvalidUploadError(f"multipart body has more than {MAX_PARTS} parts")
                _, params = parse_options_header(value.get(b"content-disposition", b""))
                if params.get(b"name") == b"file" and b"filename" in params:
                    try:
                        name = params[b"filename"].decode("utf-8")
                    except UnicodeDecodeError:
                        raise InvalidUploadError("the file name is not valid UTF-8") from None
                    return name, value.get(b"content-type", b"").decode("latin-1")
            elif kind == "data":
                self._count_other(len(value))
            elif kind == "end":
                raise InvalidUploadError("the multipart body has no 'file' field with a file name")

    async def data(self) -> AsyncIterator[bytes]:
        """Yield the file part's bytes, then read the rest of the body to check it is complete."""
        while True:
            kind, value = await self._next()
            if kind == "data":
                yield value
            elif kind == "part_end":
                break
        # Up to the "end" event, not merely until the parser has finished: the final chunk may
        # hold a whole field after the file, queued as events behind the parser's end.
        while True:
            kind, value = await self._next()
            if kind == "data":
                self._count_other(len(value))
            elif kind == "end":
                break


async def capped(chunks: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass `chunks` through; raise AttachmentTooLargeError once they exceed `limit` bytes."""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise AttachmentTooLargeError(f"request body exceeds the limit of {limit} bytes")
        yield chunk
