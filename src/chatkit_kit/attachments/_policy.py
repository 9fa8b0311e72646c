"""What an upload may be: size, MIME type and file name limits."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from ._errors import (
    AttachmentPolicyError,
    AttachmentTooLargeError,
    AttachmentTypeNotAllowedError,
)

DEFAULT_MAX_SIZE = 20 * 1024 * 1024
"""20 MiB."""

DEFAULT_ALLOWED_MIME_TYPES: tuple[str, ...] = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/markdown",
    "text/csv",
    "application/json",
)

DEFAULT_IMAGE_MIME_TYPES: frozenset[str] = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp"}
)
"""Types that become `ImageAttachment`s with a preview. SVG is left out on purpose: it can carry
script, so it is only ever a plain file."""

_MIME_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_PATTERN_RE = re.compile(
    r"^(\*/\*|[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/(\*|[a-z0-9][a-z0-9!#$&^_.+-]{0,126}))$"
)

_SIGNATURES: dict[str, tuple[tuple[int, bytes], ...]] = {
    "image/png": ((0, b"\x89PNG\r\n\x1a\n"),),
    "image/jpeg": ((0, b"\xff\xd8\xff"),),
    "image/gif": ((0, b"GIF8"),),
    "image/webp": ((0, b"RIFF"), (8, b"WEBP")),
}
SIGNATURE_BYTES = 12
"""How many leading bytes `check_signature` needs."""


def _shown(value: str, limit: int = 40) -> str:
    return repr(value[:limit] + ("..." if len(value) > limit else ""))


@dataclass(frozen=True)
class UploadPolicy:
    """Limits every upload must meet, checked on the declared values and on the bytes received.

    `allowed_mime_types` entries are exact types (`"application/pdf"`) or wildcards (`"image/*"`,
    `"*/*"`). Allowed types in `image_mime_types` become `ImageAttachment`s; for those the first
    bytes must match the format's signature, so an HTML file cannot pose as a PNG preview.
    """

    max_size: int = DEFAULT_MAX_SIZE
    allowed_mime_types: tuple[str, ...] = DEFAULT_ALLOWED_MIME_TYPES
    image_mime_types: frozenset[str] = field(default=DEFAULT_IMAGE_MIME_TYPES)
    max_name_length: int = 255

    def __post_init__(self) -> None:
        if isinstance(self.max_size, bool) or not isinstance(self.max_size, int):
            raise TypeError(f"max_size must be an int, got {type(self.max_size).__name__}")
        if self.max_size < 1:
            raise ValueError(f"max_size must be at least 1 byte, got {self.max_size}")
        if self.max_name_length < 1:
            raise ValueError(f"max_name_length must be at least 1, got {self.max_name_length}")
        if isinstance(self.allowed_mime_types, str):
            raise TypeError("allowed_mime_types must be a sequence of types, not one str")
        patterns = tuple(p.strip().lower() for p in self.allowed_mime_types)
        for pattern in patterns:
            if not _PATTERN_RE.match(pattern):
                raise ValueError(
                    f"allowed_mime_types entry {pattern!r} is not a MIME type such as "
                    "'application/pdf' or a wildcard such as 'image/*'"
                )
        object.__setattr__(self, "allowed_mime_types", patterns)
        object.__setattr__(
            self, "image_mime_types", frozenset(t.lower() for t in self.image_mime_types)
        )

    def check_size(self, size: int) -> int:
        """Return `size` if it is between 1 byte and `max_size`, else raise naming the limit."""
        if isinstance(size, bool) or not isinstance(size, int):
            raise AttachmentPolicyError(f"attachment size must be an int, got {size!r}")
        if size < 1:
            raise AttachmentPolicyError(
                f"attachment size {size} is not allowed: files must not be empty (minimum 1 byte)"
            )
        if size > self.max_size:
            raise AttachmentTooLargeError(
                f"attachment size {size} bytes exceeds the limit of {self.max_size} bytes"
            )
        return size

    def check_mime_type(self, mime_type: str) -> str:
        """Return the normalized type (lower case, no parameters) if the allowlist admits it.

        An empty type (browsers send one for unknown extensions) counts as
        `application/octet-stream`.
        """
        if not isinstance(mime_type, str):
            raise AttachmentPolicyError(f"MIME type must be a str, got {type(mime_type).__name__}")
        essence = mime_type.split(";", 1)[0].strip().lower() or "application/octet-stream"
        if not _MIME_RE.match(essence):
            raise AttachmentPolicyError(
                f"MIME type {_shown(mime_type)} is not a valid 'type/subtype' media type"
            )
        if not self._allowed(essence):
            raise AttachmentTypeNotAllowedError(
                f"MIME type {essence!r} is not allowed; allowed types: "
                + ", ".join(self.allowed_mime_types)
            )
        return essence

    def _allowed(self, essence: str) -> bool:
        major = essence.split("/", 1)[0]
        return any(p in ("*/*", essence, f"{major}/*") for p in self.allowed_mime_types)

    def check_name(self, name: str) -> str:
        """Return `name` if it is a plain file name: no path separators, control characters,
        or more than `max_name_length` characters."""
        if not isinstance(name, str):
            raise AttachmentPolicyError(f"file name must be a str, got {type(name).__name__}")
        if not name or not name.strip():
            raise AttachmentPolicyError("file name must not be empty")
        if len(name) > self.max_name_length:
            raise AttachmentPolicyError(
                f"file name of {len(name)} characters exceeds the limit of "
                f"{self.max_name_length} characters"
            )
        if "\x00" in name:
            raise AttachmentPolicyError(f"file name {_shown(name)} contains NUL (U+0000)")
        if "/" in name or "\\" in name:
            raise AttachmentPolicyError(
                f"file name {_shown(name)} contains a path separator ('/' or '\\'); "
                "send the base name only"
            )
        if name in (".", ".."):
            raise AttachmentPolicyError(f"file name {name!r} is not a file name")
        if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
            raise AttachmentPolicyError(
                f"file name {_shown(name)} contains control or format characters"
            )
        return name

    def check(self, name: str, size: int, mime_type: str) -> str:
        """Check a declared upload; return its normalized MIME type."""
        self.check_name(name)
        self.check_size(size)
        return self.check_mime_type(mime_type)

    def is_image(self, mime_type: str) -> bool:
        """Whether an attachment of this (normalized) type is an image with a preview."""
        return mime_type in self.image_mime_types

    def check_signature(self, mime_type: str, head: bytes) -> None:
        """Raise if `head` (the first bytes) does not look like `mime_type`, for image types."""
        if not self.is_image(mime_type):
            return
        signature = _SIGNATURES.get(mime_type)
        if signature is None:
            return
        if not all(head[at : at + len(magic)] == magic for at, magic in signature):
            raise AttachmentTypeNotAllowedError(
                f"the uploaded bytes are not a {mime_type} file (wrong file signature)"
            )
