"""The statements of one SQL store, with its table names filled in.

The text comes from the store's dialect (`stores.sql.dialects`): written once with `:name`
parameters, shared where the databases agree. `SQLAlchemyStore` runs them as `text()`;
`AsyncpgStore` runs them renumbered to `$n` (`numbered`). Every value is a bound parameter; only
table names (validated identifiers, see `stores._schema.Names`) are formatted in.

Pages are keyset pages: the page statement finds the cursor row's `(sort_key, seq)` itself, and
`LIMIT :limit` receives `limit + 1`. When a page with a cursor comes back empty the store checks
whether the cursor exists (`thread_exists`, `item_exists`), which is the only way an unknown
cursor and the end of the collection differ.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .._rules import Order
from .._schema import Names

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


class NumberedStatements:
    """`numbered` once per statement text (a store's cache): each call gives the `$n` SQL and
    the values in their order."""

    __slots__ = ("_converted",)

    def __init__(self) -> None:
        self._converted: dict[str, tuple[str, tuple[str, ...]]] = {}

    def args(self, sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """`sql` renumbered to `$n`, and the values of `params` in that order."""
        converted = self._converted.get(sql)
        if converted is None:
            converted = self._converted[sql] = numbered(sql)
        query, names = converted
        return query, [params[name] for name in names]


def pyformat(sql: str) -> str:
    """Rewrite `:name` parameters to `%(name)s` (psycopg), doubling literal `%` signs."""
    return _PARAMETER.sub(r"%(\1)s", sql.replace("%", "%%"))


class PyformatStatements:
    """`pyformat` once per statement text (a store's cache), as `NumberedStatements` is for
    `$n`: psycopg takes the `%(name)s` SQL with the parameters as they are."""

    __slots__ = ("_converted",)

    def __init__(self) -> None:
        self._converted: dict[str, str] = {}

    def sql(self, sql: str) -> str:
        """`sql` with its parameters written `%(name)s`."""
        converted = self._converted.get(sql)
        if converted is None:
            converted = self._converted[sql] = pyformat(sql)
        return converted


@dataclass(frozen=True)
class Statements:
    """Every statement of a store, with its table names filled in."""

    names: Names

    def sql(self, template: str) -> str:
        """Fill this store's table names into `template`."""
        return self.names.format(template)

    @cached_property
    def load_thread(self) -> str:
        return self.sql(self.names.dialect.load_thread)

    @cached_property
    def thread_exists(self) -> str:
        return self.sql(self.names.dialect.thread_exists)

    @cached_property
    def upsert_thread(self) -> str:
        return self.sql(self.names.dialect.upsert_thread)

    @cached_property
    def delete_thread(self) -> tuple[str, ...]:
        """The statements that delete a thread and its items, to run in one transaction."""
        return tuple(self.sql(t) for t in self.names.dialect.delete_thread)

    @cached_property
    def load_item(self) -> str:
        return self.sql(self.names.dialect.load_item)

    @cached_property
    def item_exists(self) -> str:
        return self.sql(self.names.dialect.item_exists)

    @cached_property
    def upsert_item(self) -> str:
        """Written only into a thread with a row: returns a row (or a row count) when written."""
        return self.sql(self.names.dialect.upsert_item)

    @cached_property
    def delete_item(self) -> str:
        return self.sql(self.names.dialect.delete_item)

    @cached_property
    def upsert_attachment(self) -> str:
        return self.sql(self.names.dialect.upsert_attachment)

    @cached_property
    def load_attachment(self) -> str:
        return self.sql(self.names.dialect.load_attachment)

    @cached_property
    def delete_attachment(self) -> str:
        return self.sql(self.names.dialect.delete_attachment)

    @cached_property
    def thread_attachments(self) -> str:
        return self.sql(self.names.dialect.thread_attachments)

    @cached_property
    def unattached_attachments(self) -> str:
        return self.sql(self.names.dialect.unattached_attachments)

    @cached_property
    def delete_orphan_attachment(self) -> str:
        return self.sql(self.names.dialect.delete_orphan_attachment)

    def threads_page(self, order: Order, with_cursor: bool) -> str:
        return self.sql(self.names.dialect.threads_page(order, with_cursor))

    def items_page(self, order: Order, with_cursor: bool) -> str:
        return self.sql(self.names.dialect.items_page(order, with_cursor))

    # Data keys and raw payloads (encryption)

    @cached_property
    def load_data_keys(self) -> str:
        return self.sql(self.names.dialect.load_data_keys)

    @cached_property
    def add_data_key(self) -> str:
        return self.sql(self.names.dialect.add_data_key)

    @cached_property
    def rewrap_data_key(self) -> str:
        return self.sql(self.names.dialect.rewrap_data_key)

    @cached_property
    def delete_data_keys(self) -> str:
        return self.sql(self.names.dialect.delete_data_keys)

    @cached_property
    def delete_data_key(self) -> str:
        return self.sql(self.names.dialect.delete_data_key)

    @cached_property
    def data_keys_not_under(self) -> str:
        return self.sql(self.names.dialect.data_keys_not_under)

    @cached_property
    def thread_payloads(self) -> str:
        return self.sql(self.names.dialect.thread_payloads)

    @cached_property
    def item_payloads(self) -> str:
        return self.sql(self.names.dialect.item_payloads)

    @cached_property
    def attachment_payloads(self) -> str:
        return self.sql(self.names.dialect.attachment_payloads)

    @cached_property
    def replace_thread_payload(self) -> str:
        return self.sql(self.names.dialect.replace_thread_payload)

    @cached_property
    def replace_item_payload(self) -> str:
        return self.sql(self.names.dialect.replace_item_payload)

    @cached_property
    def replace_attachment_payload(self) -> str:
        return self.sql(self.names.dialect.replace_attachment_payload)

    # Retention

    @cached_property
    def owner_attachments(self) -> str:
        return self.sql(self.names.dialect.owner_attachments)

    @cached_property
    def delete_owner_items(self) -> str:
        return self.sql(self.names.dialect.delete_owner_items)

    @cached_property
    def delete_owner_threads(self) -> str:
        return self.sql(self.names.dialect.delete_owner_threads)

    @cached_property
    def delete_stale_items(self) -> str:
        return self.sql(self.names.dialect.delete_stale_items)

    @cached_property
    def delete_empty_thread(self) -> str:
        return self.sql(self.names.dialect.delete_empty_thread)

    @cached_property
    def lock_thread_before_empty_delete(self) -> str | None:
        lock = self.names.dialect.lock_thread_before_empty_delete
        return None if lock is None else self.sql(lock)

    def stale_threads(self, owner: bool) -> str:
        return self.sql(self.names.dialect.stale_threads(owner))

    def count_stale_threads(self, owner: bool) -> str:
        return self.sql(self.names.dialect.count_stale_threads(owner))
