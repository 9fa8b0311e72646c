"""MemoryStore passes both conformance tiers and the attachment-index suite."""

from __future__ import annotations

from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import AttachmentIndexConformance, StrictStoreConformance


class TestMemoryStoreConformance(StrictStoreConformance):
    def make_store(self) -> MemoryStore:
        return MemoryStore()


class TestMemoryStoreAttachmentIndex(AttachmentIndexConformance):
    def make_store(self) -> MemoryStore:
        return MemoryStore()
