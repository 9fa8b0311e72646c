"""StoreConformance works with stores that read the owner from a custom context."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import ConformanceFailure, StoreConformance


@dataclass(frozen=True)
class TenantContext:
    tenant: str


class TestTenantScopedMemoryStore(StoreConformance):
    """An async factory, a custom context and a teardown, as a user's store would have."""

    closed: list[Any] = []

    async def make_store(self) -> MemoryStore[TenantContext]:
        return MemoryStore(owner=lambda ctx: ctx.tenant)

    async def teardown_store(self, store: Any) -> None:
        self.closed.append(store)

    def make_context(self, user_id: str) -> TenantContext:
        return TenantContext(tenant=user_id)


def test_teardown_runs_once_per_test() -> None:
    suite = TestTenantScopedMemoryStore()
    suite.closed.clear()
    suite.test_thread_upsert()
    assert len(suite.closed) == 1 and isinstance(suite.closed[0], MemoryStore)


def test_failure_message_names_the_rule() -> None:
    class SharedContexts(StoreConformance):
        def make_store(self) -> MemoryStore[Any]:
            return MemoryStore()

        def make_context(self, user_id: str) -> dict[str, str]:
            return {"user_id": "always-the-same"}  # two users collapse into one owner

    with pytest.raises(ConformanceFailure, match=r"^\[owner-isolation\] "):
        SharedContexts().test_owner_isolation()


def test_unknown_profile_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATKIT_KIT_CONFORMANCE_PROFILE", "fast")
    with pytest.raises(ValueError, match="unknown conformance profile 'fast'"):
        TestTenantScopedMemoryStore().test_thread_upsert()
