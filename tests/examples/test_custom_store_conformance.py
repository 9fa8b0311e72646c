"""The custom store example keeps the whole store contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from examples.custom_store.store import TenantContext, TenantStore

from chatkit_kit.testing import StoreConformance


class TestTenantStoreConformance(StoreConformance):
    @pytest.fixture(autouse=True)
    def _database(self, tmp_path: Path) -> None:
        self.url = f"sqlite+aiosqlite:///{tmp_path / 'tenant.db'}"

    async def make_store(self) -> TenantStore:
        store = TenantStore.for_url(self.url)
        await store.migrate()
        return store

    async def teardown_store(self, store: TenantStore) -> None:
        await store.close()

    def make_context(self, user_id: str) -> TenantContext:
        return TenantContext(tenant_id="acme", user_id=user_id)
