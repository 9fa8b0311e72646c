"""MemoryStore passes the whole conformance suite."""

from __future__ import annotations

from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import StoreConformance


class TestMemoryStoreConformance(StoreConformance):
    def make_store(self) -> MemoryStore:
        return MemoryStore()
