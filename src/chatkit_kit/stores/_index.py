"""Optional store API that attachment backends use for cascades and orphan sweeps."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from chatkit.types import Attachment

logger = logging.getLogger("chatkit_kit.stores")

MAX_SKIPPED_ENCRYPTED = 10_000
"""How many encrypted rows one `list_unattached_attachments` of a store without encryption
reads past (skipping them) to fill its page."""


def warn_skipped_encrypted(store: object, skipped: int) -> None:
    """Log that a store without keys skipped `skipped` encrypted attachment rows."""
    if skipped:
        logger.warning(
            "%s.list_unattached_attachments skipped %d encrypted attachment rows (this store "
            "has no keys): sweep orphans through the EncryptedStore around a store built with "
            "codec=EnvelopeCodec()",
            type(store).__name__,
            skipped,
        )


@dataclass(frozen=True)
class StoredAttachment:
    """An attachment row with the owner key it is stored under and when it was first saved."""

    owner: str
    attachment: Attachment
    saved_at: datetime
    """First `save_attachment` of this id by this owner, timezone-aware UTC."""


@runtime_checkable
class AttachmentIndex(Protocol):
    """Queries over attachment rows that the ChatKit `Store` ABC lacks.

    Implemented by `MemoryStore` (and meant for every chatkit-kit store). Attachment backends need
    it for `delete_with_thread=True` and `sweep_orphans`. Returned attachments are the stored
    rows as saved (with `metadata`).
    """

    async def list_thread_attachments(self, thread_id: str, context: Any) -> list[Attachment]:
        """Return the context owner's attachments whose `thread_id` is `thread_id`."""
        ...

    async def list_unattached_attachments(
        self, saved_before: datetime, limit: int = 100
    ) -> list[StoredAttachment]:
        """Return up to `limit` attachments of any owner with no `thread_id`, first saved
        before `saved_before`, oldest first. A naive `saved_before` is read as local time.

        A store without encryption skips rows an `EncryptedStore` encrypted (it cannot read
        them, so it cannot judge them orphans) and logs a warning with their count; sweep
        them through the `EncryptedStore`."""
        ...

    async def delete_orphan_attachment(self, owner: str, attachment_id: str) -> bool:
        """Delete the row only if it still has no `thread_id`; return whether it was deleted."""
        ...
