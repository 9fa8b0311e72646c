"""A small in-memory `AttachmentContentSource` for tests (our own interface, not a mock)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from chatkit.store import NotFoundError
from chatkit.types import Attachment


class VerificationError(Exception):
    """Stored bytes do not match the attachment's metadata."""


@dataclass
class MemoryContentSource:
    """Bytes per (owner, attachment id); optional download URLs; records every call."""

    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    invalid: set[str] = field(default_factory=set)
    issue_urls: bool = True
    delay: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def put(self, owner: str, attachment_id: str, data: bytes) -> None:
        self.blobs[(owner, attachment_id)] = data

    async def _enter(self, op: str, attachment: Attachment) -> None:
        self.calls.append((op, attachment.id))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1

    def _check(self, attachment: Attachment, context: Any) -> bytes:
        data = self.blobs.get((context.user_id, attachment.id))
        if data is None:
            raise NotFoundError(f"Attachment {attachment.id} has no bytes")
        if attachment.id in self.invalid:
            raise VerificationError(f"{attachment.id}: bytes do not match {attachment.mime_type}")
        return data

    async def read_attachment_bytes(self, attachment: Attachment, context: Any) -> bytes:
        await self._enter("read", attachment)
        return self._check(attachment, context)

    async def attachment_download_url(
        self, attachment: Attachment, context: Any, *, expires_in: int = 300
    ) -> str | None:
        await self._enter("url", attachment)
        if not self.issue_urls:
            return None
        return f"https://files.test/{context.user_id}/{attachment.id}?expires_in={expires_in}"

    async def verify_attachment(self, attachment: Attachment, context: Any) -> Attachment:
        await self._enter("verify", attachment)
        self._check(attachment, context)
        return attachment
