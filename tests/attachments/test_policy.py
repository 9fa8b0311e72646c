from __future__ import annotations

import pytest

from chatkit_kit.attachments import (
    AttachmentPolicyError,
    AttachmentTooLargeError,
    AttachmentTypeNotAllowedError,
    UploadPolicy,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8


def test_size_limits_name_the_limit() -> None:
    policy = UploadPolicy(max_size=100)
    assert policy.check_size(100) == 100
    with pytest.raises(AttachmentTooLargeError, match="101 bytes exceeds the limit of 100 bytes"):
        policy.check_size(101)
    with pytest.raises(AttachmentPolicyError, match="must not be empty"):
        policy.check_size(0)
    with pytest.raises(AttachmentPolicyError):
        policy.check_size(-5)
    assert AttachmentTooLargeError.status_code == 413


def test_mime_allowlist_with_wildcards_and_normalization() -> None:
    policy = UploadPolicy(allowed_mime_types=("image/*", "application/pdf"))
    assert policy.check_mime_type("IMAGE/PNG; charset=binary") == "image/png"
    assert policy.check_mime_type("image/svg+xml") == "image/svg+xml"
    assert policy.check_mime_type("application/pdf") == "application/pdf"
    with pytest.raises(
        AttachmentTypeNotAllowedError, match=r"'text/html' is not allowed.*image/\*"
    ):
        policy.check_mime_type("text/html")
    with pytest.raises(AttachmentTypeNotAllowedError, match="application/octet-stream"):
        policy.check_mime_type("")
    with pytest.raises(AttachmentPolicyError, match="not a valid"):
        policy.check_mime_type("image/png\r\nX-Evil: 1")
    assert UploadPolicy(allowed_mime_types=("*/*",)).check_mime_type("x/y") == "x/y"
    with pytest.raises(ValueError, match="not a MIME type"):
        UploadPolicy(allowed_mime_types=("image",))


def test_svg_is_never_an_image_preview() -> None:
    policy = UploadPolicy(allowed_mime_types=("image/*",))
    assert policy.is_image("image/png")
    assert not policy.is_image("image/svg+xml")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("a/b.txt", "path separator"),
        ("..\\evil.txt", "path separator"),
        ("../../etc/passwd", "path separator"),
        ("nul\x00.txt", "NUL"),
        ("x" * 10_000, "10000 characters exceeds the limit of 255"),
        ("line\nbreak.txt", "control"),
        ("..", "not a file name"),
        ("rtl\u202etxt.exe", "control or format"),
    ],
)
def test_bad_names_are_rejected(name: str, message: str) -> None:
    with pytest.raises(AttachmentPolicyError, match=message):
        UploadPolicy().check_name(name)


def test_good_names_pass() -> None:
    for name in ("report.pdf", "Übersicht 2026.txt", "照片.png", "a" * 255):
        assert UploadPolicy().check_name(name) == name


def test_image_signatures() -> None:
    policy = UploadPolicy()
    policy.check_signature("image/png", PNG)
    policy.check_signature("application/pdf", b"anything")
    with pytest.raises(AttachmentTypeNotAllowedError, match="not a image/png file"):
        policy.check_signature("image/png", b"<html><script>")
