"""ChatKit `Store` implementations.

`MemoryStore` needs only the base install. `SQLAlchemyStore` and `AsyncpgStore` are imported
lazily; importing one whose extra is missing raises an ImportError naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._optional import lazy_exports
from ._base import AttachmentPresenter, OwnerScopedStore
from ._ids import MAX_ID_LENGTH
from ._index import AttachmentIndex, StoredAttachment, ThreadDeleteListener
from ._owner import OwnerResolver, default_owner
from ._pagination import MAX_PAGE_LIMIT
from ._retention import AttachmentBytesEraser, RetentionStore
from ._schema import LATEST_VERSION as SCHEMA_VERSION
from ._schema import SchemaVersionError
from ._sqlstore import DatabaseUnavailableError
from .memory import MemoryStore

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_PAGE_LIMIT",
    "SCHEMA_VERSION",
    "AsyncpgStore",
    "AttachmentBytesEraser",
    "AttachmentIndex",
    "AttachmentPresenter",
    "DatabaseUnavailableError",
    "MemoryStore",
    "OwnerResolver",
    "OwnerScopedStore",
    "RetentionStore",
    "SQLAlchemyStore",
    "SchemaVersionError",
    "StoredAttachment",
    "ThreadDeleteListener",
    "default_owner",
]

_LAZY: dict[str, tuple[str, str]] = {
    "SQLAlchemyStore": ("sqlalchemy", "sqlalchemy"),
    "AsyncpgStore": ("asyncpg", "asyncpg"),
}

if TYPE_CHECKING:
    from .asyncpg import AsyncpgStore
    from .sqlalchemy import SQLAlchemyStore


__getattr__ = lazy_exports(__name__, _LAZY)
