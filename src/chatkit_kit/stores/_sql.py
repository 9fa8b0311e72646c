"""The SQL statements of the SQL stores, written once with `:name` parameters.

`SQLAlchemyStore` runs them as `text()`; `AsyncpgStore` runs them renumbered to `$n`
(`numbered`). Both therefore read and write the same rows the same way. Every value is a bound
parameter; only table names (validated identifiers, see `_schema.Names`) are formatted in.

Pages are keyset pages (see `_pagination`): the cursor row's `(sort_key, seq)` is looked up by a
subquery inside the page statement, and `LIMIT :limit` receives `limit + 1`. When a page with a
cursor comes back empty the store checks whether the cursor exists (`*_EXISTS`), which is the
only way an unknown cursor and the end of the collection differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from . import _mysql
from ._rules import Order
from ._schema import Names

LOAD_THREAD = "SELECT payload FROM {threads} WHERE owner = :owner AND id = :id"

THREAD_EXISTS = "SELECT 1 FROM {threads} WHERE owner = :owner AND id = :id"

UPSERT_THREAD = (
    "INSERT INTO {threads} (owner, id, sort_key, payload) "
    "VALUES (:owner, :id, :sort_key, :payload) "
    "ON CONFLICT (owner, id) DO UPDATE SET payload = excluded.payload"
)

_THREADS_PAGE = (
    "SELECT id, payload FROM {threads} WHERE owner = :owner{cursor} "
    "ORDER BY sort_key {direction}, seq {direction} LIMIT :limit"
)
_THREADS_CURSOR = (
    " AND (sort_key, seq) {op} "
    "(SELECT c.sort_key, c.seq FROM {threads} c WHERE c.owner = :owner AND c.id = :after)"
)

# Both in one transaction, the thread row first. On PostgreSQL deleting the row waits for every
# item write holding it (FOR KEY SHARE, see UPSERT_ITEM_IN_THREAD_POSTGRESQL); the items
# statement then runs with a snapshot taken after those writes committed, so none of their
# items survives.
DELETE_THREAD_ITEMS = "DELETE FROM {items} WHERE owner = :owner AND thread_id = :thread_id"
DELETE_THREAD_ROW = "DELETE FROM {threads} WHERE owner = :owner AND id = :thread_id"

LOAD_ITEM = (
    "SELECT payload FROM {items} WHERE owner = :owner AND thread_id = :thread_id AND id = :id"
)

ITEM_EXISTS = "SELECT 1 FROM {items} WHERE owner = :owner AND thread_id = :thread_id AND id = :id"

# An item is written only into a thread that has a row (else no row is returned and the store
# raises NotFoundError), checked by the writing statement itself. PostgreSQL item writes also
# hold the thread row (FOR KEY SHARE) until they commit, so a concurrent delete_thread waits for
# them and then deletes their items, and a write that waited for a delete finds no row and
# writes nothing. SQLite runs one writer at a time, so the check and the write cannot be split
# by a delete. (MySQL has no RETURNING: `_mysql.UPSERT_ITEM_IN_THREAD` and its row count.)
UPSERT_ITEM_IN_THREAD = (
    "INSERT INTO {items} (owner, thread_id, id, sort_key, payload) "
    "SELECT :owner, :thread_id, :id, :sort_key, :payload "
    "WHERE EXISTS (SELECT 1 FROM {threads} WHERE owner = :owner AND id = :thread_id) "
    "ON CONFLICT (owner, thread_id, id) DO UPDATE SET payload = excluded.payload "
    "RETURNING 1"
)
UPSERT_ITEM_IN_THREAD_POSTGRESQL = (
    "WITH live AS (SELECT 1 FROM {threads} WHERE owner = :owner AND id = :thread_id FOR KEY SHARE) "
    "INSERT INTO {items} (owner, thread_id, id, sort_key, payload) "
    "SELECT :owner, :thread_id, :id, CAST(:sort_key AS bigint), :payload "
    "WHERE EXISTS (SELECT 1 FROM live) "
    "ON CONFLICT (owner, thread_id, id) DO UPDATE SET payload = excluded.payload "
    "RETURNING 1"
)

DELETE_ITEM = "DELETE FROM {items} WHERE owner = :owner AND thread_id = :thread_id AND id = :id"

_ITEMS_PAGE = (
    "SELECT id, payload FROM {items} WHERE owner = :owner AND thread_id = :thread_id{cursor} "
    "ORDER BY sort_key {direction}, seq {direction} LIMIT :limit"
)
_ITEMS_CURSOR = (
    " AND (sort_key, seq) {op} "
    "(SELECT c.sort_key, c.seq FROM {items} c "
    "WHERE c.owner = :owner AND c.thread_id = :thread_id AND c.id = :after)"
)

UPSERT_ATTACHMENT = (
    "INSERT INTO {attachments} (owner, id, thread_id, payload) "
    "VALUES (:owner, :id, :thread_id, :payload) "
    "ON CONFLICT (owner, id) DO UPDATE SET thread_id = excluded.thread_id, "
    "payload = excluded.payload, updated_at = CURRENT_TIMESTAMP"
)

LOAD_ATTACHMENT = "SELECT payload FROM {attachments} WHERE owner = :owner AND id = :id"

DELETE_ATTACHMENT = "DELETE FROM {attachments} WHERE owner = :owner AND id = :id"

THREAD_ATTACHMENTS = (
    "SELECT payload FROM {attachments} WHERE owner = :owner AND thread_id = :thread_id "
    "ORDER BY created_at, id"
)

# Across owners: the orphan sweep of an attachment backend, not a per-request query.
UNATTACHED_ATTACHMENTS = (
    "SELECT owner, payload, created_at FROM {attachments} "
    "WHERE thread_id IS NULL AND created_at < :before ORDER BY created_at, owner, id LIMIT :limit"
)

DELETE_ORPHAN_ATTACHMENT = (
    "DELETE FROM {attachments} WHERE owner = :owner AND id = :id AND thread_id IS NULL RETURNING id"
)


def _page(template: str, cursor_template: str, order: Order, with_cursor: bool) -> str:
    cursor = cursor_template.replace("{op}", ">" if order == "asc" else "<")
    return template.replace("{cursor}", cursor if with_cursor else "").replace(
        "{direction}", "ASC" if order == "asc" else "DESC"
    )


def threads_page(order: Order, with_cursor: bool) -> str:
    """The `load_threads` page statement template for `order`, with or without `after`."""
    return _page(_THREADS_PAGE, _THREADS_CURSOR, order, with_cursor)


def items_page(order: Order, with_cursor: bool) -> str:
    """The `load_thread_items` page statement template for `order`, with or without `after`."""
    return _page(_ITEMS_PAGE, _ITEMS_CURSOR, order, with_cursor)


_PARAMETER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """Rewrite `:name` parameters to PostgreSQL's `$n`; return the SQL and the names in order."""
    order: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    return _PARAMETER.sub(replace, sql), tuple(order)


@dataclass(frozen=True)
class Statements:
    """Every statement of a store, with its table names filled in."""

    names: Names

    def sql(self, template: str) -> str:
        """Fill this store's table names into `template` (MySQL: its own text where it differs)."""
        if self.names.dialect == "mysql":
            template = _mysql.statement_overrides().get(template, template)
        return self.names.format(template)

    @cached_property
    def load_thread(self) -> str:
        return self.sql(LOAD_THREAD)

    @cached_property
    def thread_exists(self) -> str:
        return self.sql(THREAD_EXISTS)

    @cached_property
    def upsert_thread(self) -> str:
        return self.sql(UPSERT_THREAD)

    @cached_property
    def delete_thread(self) -> tuple[str, ...]:
        """The statements that delete a thread and its items, to run in one transaction."""
        if self.names.dialect == "mysql":
            return (self.names.format(_mysql.DELETE_THREAD),)
        return (self.sql(DELETE_THREAD_ROW), self.sql(DELETE_THREAD_ITEMS))

    @cached_property
    def load_item(self) -> str:
        return self.sql(LOAD_ITEM)

    @cached_property
    def item_exists(self) -> str:
        return self.sql(ITEM_EXISTS)

    @cached_property
    def upsert_item(self) -> str:
        """Returns a row when written, none when the thread has no row (MySQL: the row count)."""
        if self.names.dialect == "postgresql":
            return self.sql(UPSERT_ITEM_IN_THREAD_POSTGRESQL)
        if self.names.dialect == "mysql":
            return self.names.format(_mysql.UPSERT_ITEM_IN_THREAD)
        return self.sql(UPSERT_ITEM_IN_THREAD)

    @cached_property
    def delete_item(self) -> str:
        return self.sql(DELETE_ITEM)

    @cached_property
    def upsert_attachment(self) -> str:
        return self.sql(UPSERT_ATTACHMENT)

    @cached_property
    def load_attachment(self) -> str:
        return self.sql(LOAD_ATTACHMENT)

    @cached_property
    def delete_attachment(self) -> str:
        return self.sql(DELETE_ATTACHMENT)

    @cached_property
    def thread_attachments(self) -> str:
        return self.sql(THREAD_ATTACHMENTS)

    @cached_property
    def unattached_attachments(self) -> str:
        return self.sql(UNATTACHED_ATTACHMENTS)

    @cached_property
    def delete_orphan_attachment(self) -> str:
        return self.sql(DELETE_ORPHAN_ATTACHMENT)

    def threads_page(self, order: Order, with_cursor: bool) -> str:
        if self.names.dialect == "mysql":
            return self.sql(_mysql.threads_page(order, with_cursor))
        return self.sql(threads_page(order, with_cursor))

    def items_page(self, order: Order, with_cursor: bool) -> str:
        if self.names.dialect == "mysql":
            return self.sql(_mysql.items_page(order, with_cursor))
        return self.sql(items_page(order, with_cursor))
