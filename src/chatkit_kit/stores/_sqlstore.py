"""The store logic shared by the SQL stores.

A driver supplies exactly two things: `_connect`, one connection (optionally inside one
transaction) that runs statements, and `_translate`, which turns its driver's exceptions into
`chatkit_kit.errors`. What differs between databases is the dialect's (`stores.sql.dialects`):
statements, capabilities, migration lock, error table and retry policy. Everything else lives
here: the schema check (`_ready`, once per store), migrations, id rules, the one retry loop,
and the guarantee that no driver exception escapes.
"""

from __future__ import annotations

import asyncio
import random
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from chatkit.store import TContext
from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata
from typing_extensions import Self

from ..errors import ChatKitKitError, DatabaseError, EncryptedPayloadError
from . import _codec, _deadline, _retention, _schema
from ._base import (
    OwnerScopedStore,
    attachment_not_found,
    cursor_not_found,
    item_not_found,
    thread_not_found,
)
from ._datakeys import PayloadKind, StoredPayload, WrappedDataKey, check_kind
from ._index import MAX_SKIPPED_ENCRYPTED, StoredAttachment, warn_skipped_encrypted
from ._rules import (
    Order,
    OwnerResolver,
    build_page,
    check_id,
    check_limit,
    check_order,
    is_storable_id,
    sort_key,
)
from .sql import retention as _sql_retention
from .sql.statements import Statements

if TYPE_CHECKING:
    from sqlalchemy import MetaData

Params = Mapping[str, Any]
Row = Sequence[Any]
"""A fetched row: `(id, payload)` for pages, `(payload,)` for single loads."""

_T = TypeVar("_T")
_ORDERS: tuple[Order, Order] = ("asc", "desc")
_row_id = itemgetter(0)


class Connection(Protocol):
    """What a backend's `_connect` yields: statements with `:name` parameters.

    `params=None` runs `sql` as is, without parameters (migrations' DDL).
    """

    async def fetch(self, sql: str, params: Params | None) -> Sequence[Row]:
        """Run one statement and return all its rows."""
        ...

    async def fetch_value(self, sql: str, params: Params | None) -> Any:
        """Run one statement; return the first column of its first row, or None."""
        ...

    async def execute(self, sql: str, params: Params | None) -> None:
        """Run one statement."""
        ...

    async def execute_count(self, sql: str, params: Params) -> int:
        """Run one statement; return its affected-row count (MySQL: rows matched)."""
        ...


class SQLStoreBase(OwnerScopedStore[TContext], Generic[TContext]):
    """A `Store` over the chatkit-kit SQL schema; subclasses run statements on their driver.

    The store checks the schema version on its first call and refuses to run against tables
    that are missing, older (run `migrate()`) or newer than this release knows
    (`SchemaVersionError`).
    """

    def __init__(
        self,
        names: _schema.Names,
        *,
        owner: OwnerResolver | None,
        codec: _codec.StoreCodec | None = None,
        statement_timeout: float | None = _deadline.DEFAULT_STATEMENT_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(owner=owner)
        self.statement_timeout = _deadline.check_statement_timeout(statement_timeout)
        """Seconds a statement waits for the database's answer before the call raises
        `DatabaseTimeoutError` (None: no bound; SQLite: its busy timeout bounds lock waits)."""
        self._codec = codec = _codec.check_codec(codec)
        self._decode_threads: Callable[[Sequence[Row]], list[ThreadMetadata]] = lambda rows: (
            codec.decode_threads([row[1] for row in rows])
        )
        self._decode_items: Callable[[Sequence[Row]], list[ThreadItem]] = lambda rows: (
            codec.decode_items([row[1] for row in rows])
        )
        self._verify_ids = _codec.verify_row_ids(codec)
        if self._verify_ids:

            def decode_threads(rows: Sequence[Row]) -> list[ThreadMetadata]:
                threads = codec.decode_threads([row[1] for row in rows])
                _codec.check_row_ids([row[0] for row in rows], threads, "thread")
                return threads

            def decode_items(rows: Sequence[Row]) -> list[ThreadItem]:
                items = codec.decode_items([row[1] for row in rows])
                _codec.check_row_ids([row[0] for row in rows], items, "item")
                return items

            self._decode_threads, self._decode_items = decode_threads, decode_items
        self._names = names
        self._dialect = names.dialect
        self._sql = Statements(names)
        self._threads_pages = {
            (o, c): self._sql.threads_page(o, c) for o in _ORDERS for c in (False, True)
        }
        self._items_pages = {
            (o, c): self._sql.items_page(o, c) for o in _ORDERS for c in (False, True)
        }
        self._schema_ready = False
        self._retention = _sql_retention.SQLRetention(_Runner(self))

    # What a backend provides

    @abstractmethod
    async def close(self) -> None:
        """Release the engine or pool if the store created it; one you passed in stays open."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @abstractmethod
    def _connect(self, *, transaction: bool) -> AbstractAsyncContextManager[Connection]:
        """One connection from the backend's pool, inside one transaction if `transaction`.

        On any error the backend leaves nothing behind: the transaction is rolled back, and a
        connection whose state is unknown (a client-side failure, a cancelled call) is discarded
        rather than returned to the pool, so no pooled connection keeps a transaction or a lock.
        """

    @abstractmethod
    def _translate(self, error: Exception) -> DatabaseError | None:
        """The `chatkit_kit.errors` error for a driver exception, or None if `error` is not one."""

    # Running statements: every database call of the store goes through `_connection`.

    @asynccontextmanager
    async def _connection(
        self, *, transaction: bool = False, ready: bool = True, bounded: bool = True
    ) -> AsyncIterator[Connection]:
        """One connection for one call; its statements are bounded by `statement_timeout`
        unless `bounded=False` (migrations: DDL and the migration lock may take longer)."""
        if ready and not self._schema_ready:
            await self._ready()
        seconds = self.statement_timeout if self._dialect.client_statement_timeout else None
        try:
            async with self._connect(transaction=transaction) as conn:
                if seconds is not None and bounded:
                    yield _Bounded(conn, seconds)
                else:
                    yield conn
        except ChatKitKitError:
            raise
        except _deadline.StatementTimedOut as error:
            raise _deadline.timeout_error(error) from error
        except Exception as error:
            translated = self._translate(error)
            if translated is None:
                raise
            raise translated from error

    async def _retrying(self, operation: Callable[..., Awaitable[_T]], *args: Any) -> _T:
        """Run one whole store call, again when the dialect's retry policy says so.

        Only whole calls are retried: each is one autocommit statement or one transaction, which
        the database rolled back completely (a deadlock victim, a lock wait timeout), so running
        it again cannot apply anything twice.
        """
        attempt = 1
        while True:
            try:
                return await operation(*args)
            except DatabaseError as error:
                if attempt >= self._dialect.attempts(error):
                    raise
            await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
            attempt += 1

    async def _fetch(self, sql: str, params: Params) -> Sequence[Row]:
        return await self._retrying(self._fetch_once, sql, params)

    async def _fetch_once(self, sql: str, params: Params) -> Sequence[Row]:
        async with self._connection() as conn:
            return await conn.fetch(sql, params)

    async def _fetch_value(self, sql: str, params: Params) -> Any:
        return await self._retrying(self._fetch_value_once, sql, params)

    async def _fetch_value_once(self, sql: str, params: Params) -> Any:
        async with self._connection() as conn:
            return await conn.fetch_value(sql, params)

    async def _execute(self, statements: Sequence[str], params: Params) -> None:
        """Run the statements, all with `params`; several run in one transaction."""
        await self._retrying(self._execute_once, statements, params)

    async def _execute_once(self, statements: Sequence[str], params: Params) -> None:
        async with self._connection(transaction=len(statements) > 1) as conn:
            for sql in statements:
                await conn.execute(sql, params)

    async def _written(self, sql: str, params: Params) -> int:
        """Run one write; return how many rows it wrote or deleted."""
        return await self._retrying(self._written_once, sql, params)

    async def _written_once(self, sql: str, params: Params) -> int:
        async with self._connection() as conn:
            return await self._count_written(conn, sql, params)

    async def _count_written(self, conn: Connection, sql: str, params: Params) -> int:
        """Run one write on `conn`; how many rows it wrote or deleted (RETURNING, or the count)."""
        if self._dialect.returning:
            return len(await conn.fetch(sql, params))
        return await conn.execute_count(sql, params)

    async def _written_after_lock(self, lock: str, sql: str, params: Params) -> int:
        """`lock`, then the write, in one transaction (retried whole)."""
        return await self._retrying(self._written_after_lock_once, lock, sql, params)

    async def _written_after_lock_once(self, lock: str, sql: str, params: Params) -> int:
        async with self._connection(transaction=True) as conn:
            await conn.fetch(lock, params)
            return await self._count_written(conn, sql, params)

    @property
    def codec(self) -> _codec.StoreCodec:
        """The codec every payload goes through (`codec=`)."""
        return self._codec

    # Schema

    @property
    def schema(self) -> str | None:
        """The PostgreSQL schema holding the tables (None on SQLite and MySQL)."""
        return self._names.schema

    @property
    def table_prefix(self) -> str:
        """The prefix of every table name."""
        return self._names.prefix

    @property
    def metadata(self) -> MetaData:
        """SQLAlchemy `MetaData` of this store's PostgreSQL tables, e.g. for alembic.

        Tables are created and changed only by `migrate()`; include this in your alembic
        `target_metadata` so autogenerate leaves them alone.
        """
        return _schema.build_metadata(self._names.schema, self._names.prefix)

    async def migrate(self, *, target: int | None = None) -> int:
        """Create or upgrade the tables to the latest schema version (or `target`).

        Idempotent and safe to run from several processes at once: serialized by the dialect's
        migration lock (PostgreSQL: an advisory lock inside one transaction; SQLite:
        `BEGIN IMMEDIATE`; MySQL/MariaDB, whose DDL commits implicitly: a named lock around
        steps that can run again after an interruption). Returns the schema version the
        database is at afterwards.
        """
        _schema.check_target(target)
        if self._dialect.before_migrate:
            async with self._connection(ready=False) as conn:
                for sql in self._dialect.before_migrate:
                    await conn.execute(sql, None)
        now = await self._retrying(self._migrate_once, target)
        self._schema_ready = now == _schema.LATEST_VERSION
        return now

    async def _migrate_once(self, target: int | None) -> int:
        transaction = self._dialect.transactional_ddl
        executed = 0
        try:
            async with self._connection(
                transaction=transaction, ready=False, bounded=False
            ) as conn:
                execute, fetch_value = _raw_runners(conn)

                async def counted(sql: str) -> None:
                    nonlocal executed
                    await execute(sql)
                    executed += 1

                _found, now = await _schema.apply_migrations(
                    self._names, counted, fetch_value, target=target
                )
        except DatabaseError as error:
            if not executed or transaction or error.may_have_applied:
                raise
            # DDL commits implicitly (MySQL): what ran before the failure stays applied,
            # whatever the error says about the failed statement itself.
            partial = type(error)(
                f"{error}. But the migration's earlier statements were applied: "
                f"{self._dialect.title} commits DDL as it runs; every step can run again, so "
                "fix the cause and run migrate() again"
            )
            partial.code = error.code
            partial.may_have_applied = True
            raise partial from error.__cause__
        return now

    async def schema_version(self) -> int:
        """The schema version the database is at (0 before the first migration)."""
        async with self._connection(ready=False) as conn:
            return await _schema.read_version(self._names, _raw_runners(conn)[1])

    async def _ready(self) -> None:
        """Check the schema version, once per store (concurrent first calls may both check)."""
        _schema.check_version(self._names, await self.schema_version())
        self._schema_ready = True

    # Threads

    async def load_thread(self, thread_id: str, context: TContext) -> ThreadMetadata:
        owner = self.owner_key(context)
        payload = None
        if is_storable_id(thread_id):
            payload = await self._fetch_value(
                self._sql.load_thread, {"owner": owner, "id": thread_id}
            )
        if payload is None:
            raise thread_not_found(thread_id)
        return self._codec.decode_thread(payload)

    async def save_thread(self, thread: ThreadMetadata, context: TContext) -> None:
        owner = self.owner_key(context)
        check_id(thread.id, "thread id")
        params = {
            "owner": owner,
            "id": thread.id,
            "sort_key": sort_key(thread.created_at),
            "payload": self._codec.encode_thread(thread),
        }
        await self._execute((self._sql.upsert_thread,), params)

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: TContext
    ) -> Page[ThreadMetadata]:
        owner = self.owner_key(context)
        limit, checked_order = check_limit(limit), check_order(order)
        params: dict[str, Any] = {"owner": owner, "limit": limit + 1}
        if after is not None:
            if not is_storable_id(after):
                raise cursor_not_found(str(after), "threads")
            params["after"] = after
        rows = await self._fetch(self._threads_pages[checked_order, after is not None], params)
        if not rows and after is not None:
            found = await self._fetch_value(self._sql.thread_exists, {"owner": owner, "id": after})
            if found is None:
                raise cursor_not_found(after, "threads")
        return build_page(rows, limit, _row_id, self._decode_threads)

    async def delete_thread(self, thread_id: str, context: TContext) -> None:
        owner = self.owner_key(context)
        if not is_storable_id(thread_id):
            return
        await self._execute(self._sql.delete_thread, {"owner": owner, "thread_id": thread_id})

    # Items

    async def load_thread_items(
        self,
        thread_id: str,
        after: str | None,
        limit: int,
        order: str,
        context: TContext,
    ) -> Page[ThreadItem]:
        owner = self.owner_key(context)
        limit, checked_order = check_limit(limit), check_order(order)
        where = f"thread {thread_id}"
        if after is not None and not is_storable_id(after):
            raise cursor_not_found(str(after), where)
        if not is_storable_id(thread_id):
            if after is not None:
                raise cursor_not_found(after, where)
            return Page()
        params: dict[str, Any] = {"owner": owner, "thread_id": thread_id, "limit": limit + 1}
        if after is not None:
            params["after"] = after
        rows = await self._fetch(self._items_pages[checked_order, after is not None], params)
        if not rows and after is not None:
            found = await self._fetch_value(
                self._sql.item_exists, {"owner": owner, "thread_id": thread_id, "id": after}
            )
            if found is None:
                raise cursor_not_found(after, where)
        return build_page(rows, limit, _row_id, self._decode_items)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: TContext) -> None:
        await self._upsert_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: TContext) -> None:
        await self._upsert_item(thread_id, item, context)

    async def _upsert_item(self, thread_id: str, item: ThreadItem, context: TContext) -> None:
        """Insert the item, or replace its payload keeping its original position."""
        owner = self.owner_key(context)
        check_id(thread_id, "thread id")
        check_id(item.id, "item id")
        params = {
            "owner": owner,
            "thread_id": thread_id,
            "id": item.id,
            "sort_key": sort_key(item.created_at),
            "payload": self._codec.encode_item(item),
        }
        if not await self._write_item(params):
            raise thread_not_found(thread_id)  # never saved, or deleted (maybe meanwhile)

    async def _write_item(self, params: Params) -> bool:
        """Write the item if its thread has a row, checked atomically with the write (see the
        dialect's `upsert_item`). Returns whether it was written."""
        return await self._written(self._sql.upsert_item, params) > 0

    async def load_item(self, thread_id: str, item_id: str, context: TContext) -> ThreadItem:
        owner = self.owner_key(context)
        payload = None
        if is_storable_id(thread_id) and is_storable_id(item_id):
            payload = await self._fetch_value(
                self._sql.load_item, {"owner": owner, "thread_id": thread_id, "id": item_id}
            )
        if payload is None:
            raise item_not_found(thread_id, item_id)
        return self._codec.decode_item(payload)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: TContext) -> None:
        owner = self.owner_key(context)
        if not (is_storable_id(thread_id) and is_storable_id(item_id)):
            return
        await self._execute(
            (self._sql.delete_item,), {"owner": owner, "thread_id": thread_id, "id": item_id}
        )

    # Attachments

    async def save_attachment(self, attachment: Attachment, context: TContext) -> None:
        owner = self.owner_key(context)
        check_id(attachment.id, "attachment id")
        params = {
            "owner": owner,
            "id": attachment.id,
            "thread_id": attachment.thread_id,
            "payload": self._codec.encode_attachment(attachment),
        }
        await self._execute((self._sql.upsert_attachment,), params)

    async def load_attachment(self, attachment_id: str, context: TContext) -> Attachment:
        owner = self.owner_key(context)
        payload = None
        if is_storable_id(attachment_id):
            payload = await self._fetch_value(
                self._sql.load_attachment, {"owner": owner, "id": attachment_id}
            )
        if payload is None:
            raise attachment_not_found(attachment_id)
        return self._codec.decode_attachment(payload)

    async def delete_attachment(self, attachment_id: str, context: TContext) -> None:
        owner = self.owner_key(context)
        if not is_storable_id(attachment_id):
            return
        await self._execute((self._sql.delete_attachment,), {"owner": owner, "id": attachment_id})

    # AttachmentIndex (chatkit_kit.stores.AttachmentIndex)

    async def list_thread_attachments(self, thread_id: str, context: TContext) -> list[Attachment]:
        owner = self.owner_key(context)
        if not is_storable_id(thread_id):
            return []
        rows = await self._fetch(
            self._sql.thread_attachments, {"owner": owner, "thread_id": thread_id}
        )
        attachments = [self._codec.decode_attachment(row[0]) for row in rows]
        if self._verify_ids:
            _codec.check_row_ids([row[1] for row in rows], attachments, "attachment")
        return attachments

    async def list_unattached_attachments(
        self, saved_before: datetime, limit: int = 100
    ) -> list[StoredAttachment]:
        limit = check_limit(limit)
        before = saved_before.astimezone(timezone.utc)  # naive is read as local time
        bound = self._dialect.timestamp_parameter(before)
        window = limit
        while True:
            rows = await self._fetch(
                self._sql.unattached_attachments, {"before": bound, "limit": window}
            )
            found: list[StoredAttachment] = []
            skipped = 0
            for row in rows:
                try:
                    attachment = self._codec.decode_attachment(row[1])
                except EncryptedPayloadError:
                    skipped += 1  # an EncryptedStore's row: this store cannot read it
                    continue
                if self._verify_ids:
                    _codec.check_row_ids((row[3],), (attachment,), "attachment")
                found.append(StoredAttachment(row[0], attachment, _utc(row[2])))
                if len(found) == limit:
                    break
            last = len(rows) < window or window >= limit + MAX_SKIPPED_ENCRYPTED
            if len(found) == limit or not skipped or last:
                warn_skipped_encrypted(self, skipped)
                return found
            window = min(window * 4, limit + MAX_SKIPPED_ENCRYPTED)

    async def delete_orphan_attachment(self, owner: str, attachment_id: str) -> bool:
        if not is_storable_id(attachment_id):
            return False
        params = {"owner": owner, "id": attachment_id}
        return await self._written(self._sql.delete_orphan_attachment, params) > 0

    # Retention and erasure (chatkit_kit.stores.RetentionStore)

    async def erase_owner(
        self,
        owner: str,
        *,
        batch_size: int = _retention.DEFAULT_BATCH_SIZE,
        progress: _retention.Progress | None = None,
        attachments: _retention.AttachmentBytesEraser | None = None,
    ) -> int:
        """Delete every thread, item and attachment of the owner key `owner`.

        Attachment bytes go first, through the attachment backend passed as `attachments`
        (`AttachmentBytesEraser`). Works in batches of `batch_size` rows;
        idempotent and resumable. Returns the number of threads deleted. Rows the owner writes
        while this runs may survive it: run it once the owner's sessions are closed.
        """
        _retention.check_owner(owner)
        batch_size = _retention.check_batch_size(batch_size)
        return await self._retention.erase_owner(owner, batch_size, progress, attachments)

    async def prune(
        self,
        older_than: timedelta,
        owner: str | None = None,
        *,
        batch_size: int = _retention.DEFAULT_BATCH_SIZE,
        dry_run: bool = False,
        progress: _retention.Progress | None = None,
        attachments: _retention.AttachmentBytesEraser | None = None,
    ) -> int:
        """Delete threads (with their items and attachments) whose latest activity is older than
        `older_than`; return how many (with `dry_run=True`: how many would be deleted).

        Latest activity is the newest `created_at` of the thread and its items. `owner` limits
        the prune to one owner key. Works in batches of `batch_size` threads, each thread's
        items `batch_size` rows at a time; idempotent and resumable. A thread that receives a
        new item while it is being pruned keeps that item and is not deleted.
        """
        cutoff = _retention.cutoff_key(older_than)
        if owner is not None:
            _retention.check_owner(owner)
        batch_size = _retention.check_batch_size(batch_size)
        return await self._retention.prune(
            cutoff, owner, batch_size, dry_run, progress, attachments
        )

    # Data keys and raw payloads (chatkit_kit.stores.DataKeyTable)

    async def load_data_keys(self, owner: str) -> list[WrappedDataKey]:
        _retention.check_owner(owner)
        rows = await self._fetch(self._sql.load_data_keys, {"owner": owner})
        return [WrappedDataKey(owner, int(row[0]), str(row[1]), str(row[2])) for row in rows]

    async def add_data_key(self, key: WrappedDataKey) -> None:
        _retention.check_owner(key.owner)
        await self._execute((self._sql.add_data_key,), _key_params(key))

    async def rewrap_data_key(self, key: WrappedDataKey, previous: WrappedDataKey) -> None:
        if (key.owner, key.version) != (previous.owner, previous.version):
            raise ValueError("a data key is rewrapped under its own owner and version")
        params = {
            **_key_params(key),
            "previous_kek_id": previous.kek_id,
            "previous_wrapped": previous.wrapped,
        }
        await self._execute((self._sql.rewrap_data_key,), params)

    async def delete_data_keys(self, owner: str, version: int | None = None) -> None:
        _retention.check_owner(owner)
        if version is None:
            await self._execute((self._sql.delete_data_keys,), {"owner": owner})
        else:
            params = {"owner": owner, "version": int(version)}
            await self._execute((self._sql.delete_data_key,), params)

    async def data_keys_not_under(self, kek_id: str, limit: int) -> list[WrappedDataKey]:
        limit = check_limit(limit)
        rows = await self._fetch(self._sql.data_keys_not_under, {"kek_id": kek_id, "limit": limit})
        return [WrappedDataKey(str(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]

    async def payload_rows(
        self, kind: PayloadKind, after: StoredPayload | None, limit: int
    ) -> list[StoredPayload]:
        kind, limit = check_kind(kind), check_limit(limit)
        params: dict[str, Any] = {
            "owner": "" if after is None else after.owner,
            "id": "" if after is None else after.id,
            "limit": limit,
        }
        if kind == "thread":
            rows = await self._fetch(self._sql.thread_payloads, params)
            return [StoredPayload(kind, str(r[0]), str(r[1]), str(r[1]), r[2]) for r in rows]
        if kind == "item":
            params["thread_id"] = "" if after is None else str(after.thread_id)
            rows = await self._fetch(self._sql.item_payloads, params)
            return [StoredPayload(kind, str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]
        rows = await self._fetch(self._sql.attachment_payloads, params)
        return [
            StoredPayload(kind, str(r[0]), None if r[1] is None else str(r[1]), str(r[2]), r[3])
            for r in rows
        ]

    async def replace_payload(self, row: StoredPayload, payload: str) -> bool:
        kind = check_kind(row.kind)
        params: dict[str, Any] = {
            "owner": row.owner,
            "id": row.id,
            "payload": payload,
            "previous": row.payload,
        }
        if kind == "thread":
            sql = self._sql.replace_thread_payload
        elif kind == "item":
            sql = self._sql.replace_item_payload
            params["thread_id"] = row.thread_id
        else:
            sql = self._sql.replace_attachment_payload
        return await self._written(sql, params) > 0


def _utc(value: datetime | str) -> datetime:
    """A stored `created_at` (timestamptz, or SQLite's UTC text) as an aware UTC datetime."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _raw_runners(conn: Connection) -> tuple[_schema.Execute, _schema.FetchValue]:
    async def execute(sql: str) -> None:
        await conn.execute(sql, None)

    async def fetch_value(sql: str) -> Any:
        return await conn.fetch_value(sql, None)

    return execute, fetch_value


class _Bounded:
    """A connection whose every statement waits at most `seconds` for its answer."""

    __slots__ = ("_conn", "_seconds")

    def __init__(self, conn: Connection, seconds: float) -> None:
        self._conn = conn
        self._seconds = seconds

    async def fetch(self, sql: str, params: Params | None) -> Sequence[Row]:
        return await _deadline.bounded(self._conn.fetch(sql, params), self._seconds)

    async def fetch_value(self, sql: str, params: Params | None) -> Any:
        return await _deadline.bounded(self._conn.fetch_value(sql, params), self._seconds)

    async def execute(self, sql: str, params: Params | None) -> None:
        await _deadline.bounded(self._conn.execute(sql, params), self._seconds)

    async def execute_count(self, sql: str, params: Params) -> int:
        return await _deadline.bounded(self._conn.execute_count(sql, params), self._seconds)


class _Runner:
    """The store's statements and calls as retention (`stores.sql.retention`) runs them."""

    __slots__ = ("_store", "statements")

    def __init__(self, store: SQLStoreBase[Any]) -> None:
        self._store = store
        self.statements = store._sql

    async def fetch(self, sql: str, params: Params) -> Sequence[Row]:
        return await self._store._fetch(sql, params)

    async def fetch_value(self, sql: str, params: Params) -> Any:
        return await self._store._fetch_value(sql, params)

    async def execute(self, sql: str, params: Params) -> None:
        await self._store._execute((sql,), params)

    async def written(self, sql: str, params: Params) -> int:
        return await self._store._written(sql, params)

    async def written_after_lock(self, lock: str, sql: str, params: Params) -> int:
        return await self._store._written_after_lock(lock, sql, params)

    def decode_attachment(self, payload: Any) -> Attachment:
        return self._store._codec.decode_attachment(payload)


def _key_params(key: WrappedDataKey) -> dict[str, Any]:
    return {
        "owner": key.owner,
        "version": key.version,
        "kek_id": key.kek_id,
        "wrapped": key.wrapped,
    }
