"""ChatKit `Store` implementations.

`MemoryStore` needs only the base install. `SQLAlchemyStore` and `AsyncpgStore` are imported
lazily; importing one whose extra is missing raises `MissingDependencyError` (an ImportError)
naming the extra. The database errors are re-exported from `chatkit_kit.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._optional import lazy_exports
from ..errors import (
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    SchemaVersionError,
)
from ._base import OwnerScopedStore
from ._codec import JSONCodec, StoreCodec
from ._forwarding import ForwardingStore
from ._index import AttachmentIndex, StoredAttachment
from ._retention import DEFAULT_BATCH_SIZE, MAX_BATCH_SIZE, AttachmentBytesEraser, RetentionStore
from ._rules import (
    MAX_ID_BYTES,
    MAX_ID_LENGTH,
    MAX_OWNER_BYTES,
    MAX_PAGE_LIMIT,
    OwnerResolver,
    check_id,
    check_owner,
    default_owner,
    is_storable_id,
    sort_key,
)
from ._schema import DEFAULT_TABLE_PREFIX, check_table_prefix
from ._schema import LATEST_VERSION as SCHEMA_VERSION
from ._scripts import migration_script
from ._urls import redact_database_url
from .memory import MemoryStore
from .sql.dialects import resolve_database_url

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_TABLE_PREFIX",
    "MAX_BATCH_SIZE",
    "MAX_ID_BYTES",
    "MAX_ID_LENGTH",
    "MAX_OWNER_BYTES",
    "MAX_PAGE_LIMIT",
    "SCHEMA_VERSION",
    "AsyncpgStore",
    "AttachmentBytesEraser",
    "AttachmentIndex",
    "DatabaseConfigurationError",
    "DatabaseError",
    "DatabaseTimeoutError",
    "DatabaseUnavailableError",
    "ForwardingStore",
    "JSONCodec",
    "MemoryStore",
    "OwnerResolver",
    "OwnerScopedStore",
    "RetentionStore",
    "SQLAlchemyStore",
    "SchemaVersionError",
    "StoreCodec",
    "StoredAttachment",
    "check_id",
    "check_owner",
    "check_table_prefix",
    "default_owner",
    "is_storable_id",
    "migration_script",
    "redact_database_url",
    "resolve_database_url",
    "sort_key",
]

_LAZY: dict[str, tuple[str, str]] = {
    "SQLAlchemyStore": ("sqlalchemy", "sqlalchemy"),
    "AsyncpgStore": ("asyncpg", "asyncpg"),
}

if TYPE_CHECKING:
    from .asyncpg import AsyncpgStore
    from .sqlalchemy import SQLAlchemyStore


__getattr__ = lazy_exports(__name__, _LAZY)
