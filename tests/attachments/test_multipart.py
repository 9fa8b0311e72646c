"""The streaming multipart reader behind the direct upload route, fed chunk by chunk."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from chatkit_kit.attachments import AttachmentTooLargeError, InvalidUploadError
from chatkit_kit.attachments._multipart import (
    MAX_PARTS,
    MULTIPART_OVERHEAD,
    MultipartFileReader,
    boundary_of,
    capped,
    is_multipart,
)

BOUNDARY = b"xYzZy"


def part(headers: str, body: bytes) -> bytes:
    return b"--" + BOUNDARY + b"\r\n" + headers.encode("latin-1") + b"\r\n\r\n" + body + b"\r\n"


def field(name: str, value: bytes) -> bytes:
    return part(f'Content-Disposition: form-data; name="{name}"', value)


def file_part(body: bytes, filename: bytes = b"a.txt", mime: str = "text/plain") -> bytes:
    disposition = b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"'
    return (
        b"--"
        + BOUNDARY
        + b"\r\n"
        + disposition
        + b"\r\nContent-Type: "
        + mime.encode()
        + b"\r\n\r\n"
        + body
        + b"\r\n"
    )


def closing() -> bytes:
    return b"--" + BOUNDARY + b"--\r\n"


async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def read(body: bytes, size: int = 7) -> tuple[str, str, bytes]:
    reader = MultipartFileReader(chunks(body, size).__aiter__(), BOUNDARY)
    name, mime = await reader.open()
    data = b"".join([c async for c in reader.data()])
    return name, mime, data


@pytest.mark.parametrize("size", [1, 7, 4096])
async def test_file_part_is_read_whole_across_any_chunking(size: int) -> None:
    payload = bytes(range(256)) * 20 + b"\r\n--not-the-boundary\r\n"
    body = field("note", b"hello") + file_part(payload, "Bericht ü.txt".encode()) + closing()

    assert await read(body, size) == ("Bericht ü.txt", "text/plain", payload)


async def test_fields_after_the_file_count_towards_the_overhead() -> None:
    body = file_part(b"abc") + field("x", b"y" * (MULTIPART_OVERHEAD + 1)) + closing()
    with pytest.raises(AttachmentTooLargeError, match="besides 'file'"):
        await read(body, 4096)


@pytest.mark.parametrize("whole_body_in_one_chunk", [False, True])
async def test_a_field_after_the_file_in_the_final_chunk_counts_towards_the_overhead(
    whole_body_in_one_chunk: bool,
) -> None:
    """The parser sees the end of the body in the same chunk as the field: before, the field
    (70,000 bytes) was never counted."""
    file_bytes = file_part(b"abc")
    rest = field("x", b"y" * 70_000) + closing()

    async def two_chunks() -> AsyncIterator[bytes]:
        if whole_body_in_one_chunk:
            yield file_bytes + rest
        else:
            yield file_bytes
            yield rest

    reader = MultipartFileReader(two_chunks().__aiter__(), BOUNDARY)
    await reader.open()
    with pytest.raises(AttachmentTooLargeError, match="besides 'file'"):
        _ = [c async for c in reader.data()]


async def test_fields_before_the_file_are_bounded_in_size_and_number() -> None:
    big = field("x", b"y" * (MULTIPART_OVERHEAD + 1)) + file_part(b"abc") + closing()
    with pytest.raises(AttachmentTooLargeError, match="besides 'file'"):
        await read(big, 4096)

    many = b"".join(field(f"f{i}", b"v") for i in range(MAX_PARTS)) + file_part(b"a") + closing()
    with pytest.raises(InvalidUploadError, match=f"more than {MAX_PARTS} parts"):
        await read(many)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (field("note", b"hello") + closing(), "no 'file' field"),
        (file_part(b"abc", filename=b"\xff\xfe.txt") + closing(), "not valid UTF-8"),
        (file_part(b"abc")[:-10], "truncated"),
        (b"garbage without a boundary at all", "malformed multipart body|truncated"),
    ],
)
async def test_malformed_bodies_are_invalid_uploads(body: bytes, message: str) -> None:
    with pytest.raises(InvalidUploadError, match=message):
        await read(body)


async def test_capped_stops_one_chunk_past_the_limit() -> None:
    seen: list[bytes] = []

    async def source() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 10

    with pytest.raises(AttachmentTooLargeError, match="limit of 25 bytes"):
        async for chunk in capped(source(), 25):
            seen.append(chunk)
    assert len(seen) == 2


@pytest.mark.parametrize(
    ("content_type", "multipart", "boundary"),
    [
        ("multipart/form-data; boundary=abc", True, b"abc"),
        ('Multipart/Form-Data; boundary="a b"', True, b"a b"),
        ("text/plain", False, None),
        ("multipart/form-data", True, None),
    ],
)
def test_content_type_parsing(content_type: str, multipart: bool, boundary: bytes | None) -> None:
    assert is_multipart(content_type) is multipart
    if boundary is not None:
        assert boundary_of(content_type) == boundary
    elif multipart:
        with pytest.raises(InvalidUploadError, match="without a boundary"):
            boundary_of(content_type)
