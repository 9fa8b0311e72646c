"""Image bytes recognised by their magic number, for the attachment backends and converters."""

from __future__ import annotations


def sniff_image_type(data: bytes) -> str | None:
    """The media type of image bytes models accept (PNG, JPEG, GIF, WebP); else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None
