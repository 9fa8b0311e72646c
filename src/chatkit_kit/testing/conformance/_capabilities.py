"""What a store supports beyond the core contract, detected or declared.

Attachments are optional: upstream's quickstart store raises NotImplementedError from the
attachment methods, and an app that never enables uploads never calls them. Rules that need
attachments are reported as not supported for such a store, and no other rule touches them.

Item writes are optional by declaration only (`items_written_elsewhere = True`): a projection
store (e.g. one reading an agent runtime's session events) lists items another component
wrote, and its `add_thread_item`/`save_item` do nothing. Rules that write items are then
reported as not supported; the thread, read-only and isolation rules still run. It is never
detected: a store that loses writes must fail, not be excused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from chatkit.types import FileAttachment

ATTACHMENTS = "attachments"
ITEM_WRITES = "item-writes"
REOPEN = "reopen"


@dataclass(frozen=True)
class Capabilities:
    """What the store under test supports."""

    attachments: bool
    attachments_reason: str = ""
    """Why attachments count as unsupported (shown in the skip)."""
    item_writes: bool = True
    item_writes_reason: str = ""
    reopen: bool = False

    def missing(self, needs: frozenset[str]) -> str | None:
        """Why a rule needing `needs` cannot run on this store, or None."""
        if ATTACHMENTS in needs and not self.attachments:
            return self.attachments_reason
        if ITEM_WRITES in needs and not self.item_writes:
            return self.item_writes_reason
        if REOPEN in needs and not self.reopen:
            return "no reopen(store) hook: define one to check a persistent store's reload path"
        return None


_ELSEWHERE = "declared: items_written_elsewhere = True (add_thread_item/save_item store nothing)"


async def detect_capabilities(store: Any, suite: Any, needs: frozenset[str]) -> Capabilities:
    """Use the suite's declaration, else probe the store once with a throwaway owner."""
    elsewhere = bool(getattr(suite, "items_written_elsewhere", False))
    writes: dict[str, Any] = {
        "item_writes": not elsewhere,
        "item_writes_reason": _ELSEWHERE if elsewhere else "",
        "reopen": callable(getattr(suite, "reopen", None)),
    }
    declared: bool | None = getattr(suite, "supports_attachments", None)
    if declared is not None:
        return Capabilities(
            declared, "" if declared else "declared: supports_attachments = False", **writes
        )
    context = suite.make_context(f"conformance-probe-{uuid.uuid4().hex}")
    probe = FileAttachment(id="atc_conformance_probe", name="probe.txt", mime_type="text/plain")
    try:
        await store.save_attachment(probe, context)
        await store.delete_attachment(probe.id, context)
    except NotImplementedError:
        return Capabilities(
            False, "the store raises NotImplementedError for attachments (detected)", **writes
        )
    except Exception:
        return Capabilities(True, **writes)
    return Capabilities(True, **writes)
