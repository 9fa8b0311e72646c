"""AttachmentAwareConverter: exact model input for every attachment type and failure path."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import datetime
from typing import Any

import pytest
from chatkit.agents import ThreadItemConverter
from chatkit.types import (
    Attachment,
    FileAttachment,
    HiddenContextItem,
    ImageAttachment,
    InferenceOptions,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
)

from chatkit_kit.converters import (
    MENTIONS_HEADER,
    AttachmentAwareConverter,
    AttachmentContentSource,
)
from tests.fixtures.context import Ctx

from ._source import MemoryContentSource

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 12
PDF = b"%PDF-1.7\n" + b"1 0 obj\n" * 4
NOW = datetime(2026, 1, 2, 3, 4, 5)


CTX = Ctx("alice")


def image(att_id: str, name: str = "cat.png", mime: str = "image/png") -> ImageAttachment:
    return ImageAttachment(
        id=att_id, name=name, mime_type=mime, preview_url="https://files.test/preview"
    )


def file(att_id: str, name: str, mime: str) -> FileAttachment:
    return FileAttachment(id=att_id, name=name, mime_type=mime)


def message(
    *parts: str | UserMessageTagContent,
    attachments: list[Attachment] | None = None,
    quoted: str | None = None,
    item_id: str = "msg_1",
) -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id="thr_1",
        created_at=NOW,
        content=[UserMessageTextContent(text=p) if isinstance(p, str) else p for p in parts],
        attachments=attachments or [],
        quoted_text=quoted,
        inference_options=InferenceOptions(),
    )


def text(value: str) -> dict[str, Any]:
    return {"type": "input_text", "text": value}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def source() -> MemoryContentSource:
    return MemoryContentSource()


async def convert(converter: AttachmentAwareConverter, attachment: Attachment) -> Any:
    return await converter.attachment_to_message_content(attachment)


# Images


async def test_small_image_is_inlined_as_data_url(source: MemoryContentSource) -> None:
    source.put("alice", "atc_1", PNG)
    part = await convert(AttachmentAwareConverter(source, CTX), image("atc_1"))
    assert part == {
        "type": "input_image",
        "detail": "auto",
        "image_url": f"data:image/png;base64,{b64(PNG)}",
    }
    assert source.calls == [("read", "atc_1")]


async def test_image_detail_is_configurable(source: MemoryContentSource) -> None:
    source.put("alice", "atc_1", PNG)
    part = await convert(AttachmentAwareConverter(source, CTX, image_detail="low"), image("atc_1"))
    assert part["detail"] == "low"


async def test_large_image_uses_a_short_lived_download_url(source: MemoryContentSource) -> None:
    source.put("alice", "atc_1", PNG)
    converter = AttachmentAwareConverter(
        source, CTX, image_inline_max_bytes=len(PNG) - 1, url_expires_in=120
    )
    part = await convert(converter, image("atc_1"))
    assert part == {
        "type": "input_image",
        "detail": "auto",
        "image_url": "https://files.test/alice/atc_1?expires_in=120",
    }


async def test_image_at_exactly_the_limit_is_inlined(source: MemoryContentSource) -> None:
    source.put("alice", "atc_1", PNG)
    converter = AttachmentAwareConverter(source, CTX, image_inline_max_bytes=len(PNG))
    part = await convert(converter, image("atc_1"))
    assert part["image_url"].startswith("data:image/png;base64,")


async def test_large_image_without_url_becomes_a_note(source: MemoryContentSource) -> None:
    source.put("alice", "atc_1", PNG)
    source.issue_urls = False
    converter = AttachmentAwareConverter(source, CTX, image_inline_max_bytes=10)
    part = await convert(converter, image("atc_1"))
    assert part == text(
        '[Attachment "cat.png" (image/png) is not included: it is 32 bytes, over the 10 byte '
        "inline limit, and no download URL is available.]"
    )


async def test_image_type_comes_from_extension_when_mime_is_generic(
    source: MemoryContentSource,
) -> None:
    source.put("alice", "atc_1", JPEG)
    part = await convert(
        AttachmentAwareConverter(source, CTX),
        file("atc_1", "photo.JPG", "application/octet-stream"),
    )
    assert part == {
        "type": "input_image",
        "detail": "auto",
        "image_url": f"data:image/jpeg;base64,{b64(JPEG)}",
    }


@pytest.mark.parametrize(
    ("data", "media_type"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 8, "image/gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
    ],
)
async def test_data_url_uses_the_type_of_the_bytes(
    source: MemoryContentSource, data: bytes, media_type: str
) -> None:
    source.put("alice", "atc_1", data)
    part = await convert(AttachmentAwareConverter(source, CTX), image("atc_1", "x.png"))
    assert part["image_url"] == f"data:{media_type};base64,{b64(data)}"


@pytest.mark.parametrize(
    ("attachment", "data", "reason"),
    [
        (image("atc_1"), b"", "the file is empty"),
        (image("atc_1"), b"<html>", "its contents are not a PNG, JPEG, GIF or WebP image"),
        (file("atc_1", "r.pdf", "application/pdf"), b"", "the file is empty"),
        (
            file("atc_1", "r.pdf", "application/pdf"),
            b"PK\x03\x04",
            "its contents are not a PDF document",
        ),
    ],
)
async def test_bytes_the_model_would_reject_become_a_note(
    source: MemoryContentSource, attachment: Attachment, data: bytes, reason: str
) -> None:
    source.put("alice", "atc_1", data)
    part = await convert(AttachmentAwareConverter(source, CTX), attachment)
    assert part == text(
        f"[Attachment {json.dumps(attachment.name)} ({attachment.mime_type}) is not included: "
        f"{reason}.]"
    )


async def test_pdf_header_may_follow_leading_bytes(source: MemoryContentSource) -> None:
    source.put("alice", "atc_2", b"\r\n" + PDF)
    part = await convert(
        AttachmentAwareConverter(source, CTX), file("atc_2", "r.pdf", "application/pdf")
    )
    assert part["type"] == "input_file"


async def test_unsupported_image_type_becomes_a_note_without_reading(
    source: MemoryContentSource,
) -> None:
    part = await convert(
        AttachmentAwareConverter(source, CTX), image("atc_1", "shot.heic", "image/heic")
    )
    assert part == text(
        '[Attachment "shot.heic" (image/heic) is not included: '
        "this image type is not supported by the model.]"
    )
    assert source.calls == []


async def test_prefer_urls_verifies_and_skips_reading(source: MemoryContentSource) -> None:
    source.put("alice", "atc_1", PNG)
    converter = AttachmentAwareConverter(source, CTX, prefer_urls=True)
    part = await convert(converter, image("atc_1"))
    assert part == {
        "type": "input_image",
        "detail": "auto",
        "image_url": "https://files.test/alice/atc_1?expires_in=300",
    }
    assert source.calls == [("verify", "atc_1"), ("url", "atc_1")]


async def test_prefer_urls_falls_back_to_inline_without_url(source: MemoryContentSource) -> None:
    source.put("alice", "atc_1", PNG)
    source.issue_urls = False
    converter = AttachmentAwareConverter(source, CTX, prefer_urls=True)
    part = await convert(converter, image("atc_1"))
    assert part["image_url"] == f"data:image/png;base64,{b64(PNG)}"


# PDFs


async def test_pdf_is_sent_as_input_file_with_data_url(source: MemoryContentSource) -> None:
    source.put("alice", "atc_2", PDF)
    part = await convert(
        AttachmentAwareConverter(source, CTX), file("atc_2", "report.pdf", "application/pdf")
    )
    assert part == {
        "type": "input_file",
        "filename": "report.pdf",
        "file_data": f"data:application/pdf;base64,{b64(PDF)}",
    }


async def test_large_pdf_uses_file_url(source: MemoryContentSource) -> None:
    source.put("alice", "atc_2", PDF)
    converter = AttachmentAwareConverter(source, CTX, file_inline_max_bytes=8)
    part = await convert(converter, file("atc_2", "report.pdf", "application/pdf"))
    assert part == {
        "type": "input_file",
        "file_url": "https://files.test/alice/atc_2?expires_in=300",
    }


async def test_large_pdf_without_url_becomes_a_note(source: MemoryContentSource) -> None:
    source.put("alice", "atc_2", PDF)
    source.issue_urls = False
    converter = AttachmentAwareConverter(source, CTX, file_inline_max_bytes=8)
    part = await convert(converter, file("atc_2", "report.pdf", "application/pdf"))
    assert part == text(
        f'[Attachment "report.pdf" (application/pdf) is not included: it is {len(PDF)} bytes, '
        "over the 8 byte inline limit, and no download URL is available.]"
    )


async def test_url_failure_after_read_becomes_a_note(source: MemoryContentSource) -> None:
    class Failing(MemoryContentSource):
        async def attachment_download_url(
            self, attachment: Attachment, context: Any, *, expires_in: int = 300
        ) -> str | None:
            raise RuntimeError("presigner down")

    failing = Failing()
    failing.put("alice", "atc_2", PDF)
    converter = AttachmentAwareConverter(failing, CTX, file_inline_max_bytes=8)
    part = await convert(converter, file("atc_2", "report.pdf", "application/pdf"))
    assert part["type"] == "input_text"
    assert "no download URL is available" in part["text"]


async def test_prefer_urls_falls_back_to_inline_when_url_fails() -> None:
    class Failing(MemoryContentSource):
        async def attachment_download_url(
            self, attachment: Attachment, context: Any, *, expires_in: int = 300
        ) -> str | None:
            raise RuntimeError("presigner down")

    failing = Failing()
    failing.put("alice", "atc_1", PNG)
    part = await convert(AttachmentAwareConverter(failing, CTX, prefer_urls=True), image("atc_1"))
    assert part["image_url"] == f"data:image/png;base64,{b64(PNG)}"


# Text-like files


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("notes.txt", "text/plain"),
        ("data.json", "application/json"),
        ("table.csv", "text/csv"),
        ("README.md", "text/markdown"),
        ("main.py", "text/x-python"),
        ("app.ts", "application/octet-stream"),
        ("Dockerfile", ""),
        ("config.yaml", "application/yaml"),
        ("feed.atom", "application/atom+xml"),
        ("schema.json", "application/schema+json"),
    ],
)
async def test_text_like_files_are_inlined(
    source: MemoryContentSource, name: str, mime: str
) -> None:
    source.put("alice", "atc_3", b"hello, world\n")
    part = await convert(AttachmentAwareConverter(source, CTX), file("atc_3", name, mime))
    assert part == text(f'<attachment name="{name}" type="{mime}">\nhello, world\n\n</attachment>')


async def test_text_is_truncated_with_an_explicit_note(source: MemoryContentSource) -> None:
    source.put("alice", "atc_3", b"abcdefghij")
    converter = AttachmentAwareConverter(source, CTX, text_max_bytes=4)
    part = await convert(converter, file("atc_3", "a.txt", "text/plain"))
    assert part == text(
        '<attachment name="a.txt" type="text/plain">\nabcd\n'
        '[Truncated: only the first 4 of 10 bytes of "a.txt" are included.]\n</attachment>'
    )


async def test_truncation_never_splits_a_multibyte_character(source: MemoryContentSource) -> None:
    source.put("alice", "atc_3", "aé€".encode())  # 1 + 2 + 3 bytes
    converter = AttachmentAwareConverter(source, CTX, text_max_bytes=5)
    part = await convert(converter, file("atc_3", "u.txt", "text/plain"))
    assert part["text"].startswith('<attachment name="u.txt" type="text/plain">\naé\n[Truncated:')


async def test_text_honours_charset_and_strips_bom(source: MemoryContentSource) -> None:
    source.put("alice", "atc_3", "café".encode("latin-1"))
    source.put("alice", "atc_4", b"\xef\xbb\xbfhi")
    converter = AttachmentAwareConverter(source, CTX)
    latin = await convert(converter, file("atc_3", "l.txt", "text/plain; charset=ISO-8859-1"))
    bom = await convert(converter, file("atc_4", "b.txt", "text/plain"))
    assert "\ncafé\n" in latin["text"]
    assert "\nhi\n" in bom["text"]


async def test_invalid_utf8_is_replaced_not_fatal(source: MemoryContentSource) -> None:
    source.put("alice", "atc_3", b"ok \xff\xfe end")
    part = await convert(
        AttachmentAwareConverter(source, CTX), file("atc_3", "x.txt", "text/plain")
    )
    assert "ok \ufffd\ufffd end" in part["text"]


async def test_binary_bytes_in_a_text_file_become_a_note(source: MemoryContentSource) -> None:
    source.put("alice", "atc_3", b"\x00\x01\x02")
    part = await convert(
        AttachmentAwareConverter(source, CTX), file("atc_3", "x.txt", "text/plain")
    )
    assert part == text(
        '[Attachment "x.txt" (text/plain) is not included: its contents are not text.]'
    )


async def test_names_are_json_escaped(source: MemoryContentSource) -> None:
    source.put("alice", "atc_3", b"x")
    part = await convert(
        AttachmentAwareConverter(source, CTX), file("atc_3", 'a"b.txt', "text/plain")
    )
    assert part["text"].startswith('<attachment name="a\\"b.txt" type="text/plain">')


# Other types and failures


async def test_other_types_become_a_note_without_reading(source: MemoryContentSource) -> None:
    part = await convert(
        AttachmentAwareConverter(source, CTX), file("atc_5", "archive.zip", "application/zip")
    )
    assert part == text(
        '[Attachment "archive.zip" (application/zip) is not included: '
        "this file type cannot be sent to the model.]"
    )
    assert source.calls == []


async def test_missing_bytes_become_a_note(
    source: MemoryContentSource, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="chatkit_kit.converters"):
        part = await convert(AttachmentAwareConverter(source, CTX), image("atc_404"))
    assert part == text(
        '[Attachment "cat.png" (image/png) is not included: its contents are missing.]'
    )
    assert "atc_404" in caplog.text


async def test_other_users_bytes_are_missing_bytes(source: MemoryContentSource) -> None:
    source.put("mallory", "atc_1", PNG)
    part = await convert(AttachmentAwareConverter(source, CTX), image("atc_1"))
    assert part["type"] == "input_text"
    assert "its contents are missing" in part["text"]


async def test_failed_verification_becomes_a_note(
    source: MemoryContentSource, caplog: pytest.LogCaptureFixture
) -> None:
    source.put("alice", "atc_1", PNG)
    source.invalid.add("atc_1")
    with caplog.at_level(logging.WARNING, logger="chatkit_kit.converters"):
        part = await convert(AttachmentAwareConverter(source, CTX), image("atc_1"))
    assert part == text(
        '[Attachment "cat.png" (image/png) is not included: its contents could not be verified.]'
    )
    assert "VerificationError" in caplog.text


async def test_failed_verification_with_prefer_urls_becomes_a_note(
    source: MemoryContentSource,
) -> None:
    source.put("alice", "atc_1", PNG)
    source.invalid.add("atc_1")
    converter = AttachmentAwareConverter(source, CTX, prefer_urls=True)
    part = await convert(converter, image("atc_1"))
    assert "its contents could not be verified" in part["text"]
    assert source.calls == [("verify", "atc_1")]


async def test_no_source_becomes_a_note() -> None:
    part = await convert(AttachmentAwareConverter(None, CTX), image("atc_1"))
    assert part == text(
        '[Attachment "cat.png" (image/png) is not included: no attachment backend is configured.]'
    )


async def test_cancellation_is_not_swallowed(source: MemoryContentSource) -> None:
    source.put("alice", "atc_1", PNG)
    source.delay = 10
    task = asyncio.ensure_future(convert(AttachmentAwareConverter(source, CTX), image("atc_1")))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_inline_max_bytes": -1}, "image_inline_max_bytes must be an int >= 0, got -1"),
        ({"text_max_bytes": 1.5}, "text_max_bytes must be an int >= 0, got 1.5"),
        ({"url_expires_in": 0}, "url_expires_in must be at least 1 second, got 0"),
        ({"max_concurrency": 0}, "max_concurrency must be at least 1, got 0"),
        ({"image_detail": "huge"}, "image_detail must be 'auto', 'low' or 'high', got 'huge'"),
    ],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        AttachmentAwareConverter(None, CTX, **kwargs)
    assert str(excinfo.value) == message


# Whole user messages


async def test_user_message_with_every_attachment_type(source: MemoryContentSource) -> None:
    source.put("alice", "atc_1", PNG)
    source.put("alice", "atc_2", PDF)
    source.put("alice", "atc_3", b"a,b\n1,2\n")
    item = message(
        "Compare these",
        attachments=[
            image("atc_1"),
            file("atc_2", "report.pdf", "application/pdf"),
            file("atc_3", "t.csv", "text/csv"),
            file("atc_5", "a.zip", "application/zip"),
            image("atc_404", "gone.png"),
        ],
        quoted="the second row",
    )
    out = await AttachmentAwareConverter(source, CTX).to_agent_input([item])
    assert out == [
        {
            "role": "user",
            "type": "message",
            "content": [
                text("Compare these"),
                {
                    "type": "input_image",
                    "detail": "auto",
                    "image_url": f"data:image/png;base64,{b64(PNG)}",
                },
                {
                    "type": "input_file",
                    "filename": "report.pdf",
                    "file_data": f"data:application/pdf;base64,{b64(PDF)}",
                },
                text('<attachment name="t.csv" type="text/csv">\na,b\n1,2\n\n</attachment>'),
                text(
                    '[Attachment "a.zip" (application/zip) is not included: '
                    "this file type cannot be sent to the model.]"
                ),
                text(
                    '[Attachment "gone.png" (image/png) is not included: its contents are missing.]'
                ),
            ],
        },
        {
            "role": "user",
            "type": "message",
            "content": [text("The user is referring to this in particular: \nthe second row")],
        },
    ]


async def test_quoted_text_only_for_the_last_message(source: MemoryContentSource) -> None:
    first = message("one", quoted="q1", item_id="m1")
    second = message("two", item_id="m2")
    out = await AttachmentAwareConverter(source, CTX).to_agent_input([first, second])
    assert [m["content"] for m in out] == [[text("one")], [text("two")]]  # type: ignore[typeddict-item]


async def test_matches_upstream_for_plain_messages(source: MemoryContentSource) -> None:
    items = [message("hello ", "world", quoted="q", item_id="m1"), message("again", item_id="m2")]
    ours = await AttachmentAwareConverter(source, CTX).to_agent_input(items)
    upstream = await ThreadItemConverter().to_agent_input(items)
    assert ours == upstream


async def test_attachments_of_a_message_are_fetched_concurrently(
    source: MemoryContentSource,
) -> None:
    for i in range(6):
        source.put("alice", f"atc_{i}", PNG)
    source.delay = 0.05
    item = message("x", attachments=[image(f"atc_{i}") for i in range(6)])
    out = await AttachmentAwareConverter(source, CTX, max_concurrency=3).to_agent_input(item)
    assert source.max_in_flight == 3
    parts: Any = out[0]["content"]  # type: ignore[typeddict-item]
    assert [p["type"] for p in parts] == ["input_text"] + ["input_image"] * 6
    assert source.calls == [("read", f"atc_{i}") for i in range(6)]


async def test_concurrency_limit_of_one_reads_sequentially(source: MemoryContentSource) -> None:
    for i in range(3):
        source.put("alice", f"atc_{i}", PNG)
    source.delay = 0.01
    item = message("x", attachments=[image(f"atc_{i}") for i in range(3)])
    await AttachmentAwareConverter(source, CTX, max_concurrency=1).to_agent_input(item)
    assert source.max_in_flight == 1


async def test_hidden_context_with_structured_content_is_sent_as_json(
    source: MemoryContentSource,
) -> None:
    item = HiddenContextItem(
        id="hc_1", thread_id="thr_1", created_at=NOW, content={"cart": ["é", 2], "when": NOW}
    )
    out = await AttachmentAwareConverter(source, CTX).to_agent_input([item])
    assert out == [
        {
            "type": "message",
            "role": "user",
            "content": [
                text(
                    "Hidden context for the agent (not shown to the user):\n"
                    '<HiddenContext>\n{"cart": ["é", 2], "when": "2026-01-02 03:04:05"}\n'
                    "</HiddenContext>"
                )
            ],
        }
    ]


async def test_mentions_header_matches_upstream() -> None:
    class Upstream(ThreadItemConverter):
        async def tag_to_message_content(self, tag: UserMessageTagContent) -> Any:
            return text("x")

    tag = UserMessageTagContent(id="u1", text="Ann", data={})
    out = await Upstream().to_agent_input([message(tag)])
    content: Any = out[1]["content"]  # type: ignore[typeddict-item]
    assert content[0] == text(MENTIONS_HEADER)


def test_the_test_source_implements_the_protocol() -> None:
    assert isinstance(MemoryContentSource(), AttachmentContentSource)
    assert not isinstance(object(), AttachmentContentSource)
