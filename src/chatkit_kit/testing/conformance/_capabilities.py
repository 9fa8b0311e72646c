"""What a store supports beyond the core contract, detected or declared.

Only attachments are optional: upstream's quickstart store raises NotImplementedError from the
attachment methods, and an app that never enables uploads never calls them. Rules that need
attachments are reported as not supported for such a store, and no other rule touches them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from chatkit.types import FileAttachment

ATTACHMENTS = "attachments"


@dataclass(frozen=True)
class Capabilities:
    """What the store under test supports."""

    attachments: bool
    attachments_reason: str = ""
    """Why attachments count as unsupported (shown in the skip)."""


async def detect_capabilities(store: Any, suite: Any, needs: frozenset[str]) -> Capabilities:
    """Use the suite's declaration, else probe the store once with a throwaway owner."""
    declared: bool | None = getattr(suite, "supports_attachments", None)
    if declared is not None:
        return Capabilities(declared, "" if declared else "declared: supports_attachments = False")
    context = suite.make_context(f"conformance-probe-{uuid.uuid4().hex}")
    probe = FileAttachment(id="atc_conformance_probe", name="probe.txt", mime_type="text/plain")
    try:
        await store.save_attachment(probe, context)
        await store.delete_attachment(probe.id, context)
    except NotImplementedError:
        return Capabilities(
            False, "the store raises NotImplementedError for attachments (detected)"
        )
    except Exception:
        return Capabilities(True)
    return Capabilities(True)
