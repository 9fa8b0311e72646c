"""A custom store: SQLAlchemyStore scoped by tenant and user, with longer generated ids.

The conformance suite (tests/examples/test_custom_store.py) checks it keeps the whole contract.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from chatkit.store import StoreItemType
from chatkit.types import ThreadMetadata

from chatkit_kit.stores import SQLAlchemyStore

_PREFIXES = {"message": "msg", "tool_call": "tc", "task": "tsk", "workflow": "wf"}


@dataclass(frozen=True)
class TenantContext:
    tenant_id: str
    user_id: str


def tenant_owner(context: TenantContext) -> str:
    """Rows belong to a user within a tenant; the same user id in two tenants is two owners."""
    return f"{context.tenant_id}/{context.user_id}"


class TenantStore(SQLAlchemyStore[TenantContext]):
    """Scoped by tenant and user; ids carry 64 random bits instead of upstream's 32."""

    @classmethod
    def for_url(cls, url: str, **kwargs: Any) -> TenantStore:
        return cls.from_url(url, owner=tenant_owner, table_prefix="tenant_chat_", **kwargs)

    def generate_thread_id(self, context: TenantContext) -> str:
        return f"thr_{secrets.token_hex(8)}"

    def generate_item_id(
        self, item_type: StoreItemType, thread: ThreadMetadata, context: TenantContext
    ) -> str:
        return f"{_PREFIXES.get(item_type, item_type)}_{secrets.token_hex(8)}"
