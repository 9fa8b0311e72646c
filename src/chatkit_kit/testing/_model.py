"""A deliberately simple reference model of the store contract, for the stateful test.

It keeps plain lists and sorts on every read: slow, but short enough to be obviously right.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata

from ..stores._rules import sort_key


@dataclass
class _Row:
    key: tuple[int, int]
    value: Any


@dataclass
class ReferenceModel:
    """Expected store state per owner: threads, items per thread, attachments."""

    threads: dict[tuple[str, str], _Row] = field(default_factory=dict)
    items: dict[tuple[str, str], dict[str, _Row]] = field(default_factory=dict)
    attachments: dict[tuple[str, str], Attachment] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def save_thread(self, owner: str, thread: ThreadMetadata) -> None:
        meta = ThreadMetadata(
            **{name: getattr(thread, name) for name in ThreadMetadata.model_fields}
        ).model_copy(deep=True)
        row = self.threads.get((owner, thread.id))
        if row is None:
            key = (sort_key(thread.created_at), next(self._seq))
            self.threads[(owner, thread.id)] = _Row(key, meta)
        else:
            row.value = meta

    def load_thread(self, owner: str, thread_id: str) -> ThreadMetadata | None:
        row = self.threads.get((owner, thread_id))
        return None if row is None else row.value

    def delete_thread(self, owner: str, thread_id: str) -> None:
        self.threads.pop((owner, thread_id), None)
        self.items.pop((owner, thread_id), None)

    def upsert_item(self, owner: str, thread_id: str, item: ThreadItem) -> None:
        rows = self.items.setdefault((owner, thread_id), {})
        row = rows.get(item.id)
        if row is None:
            rows[item.id] = _Row(
                (sort_key(item.created_at), next(self._seq)), item.model_copy(deep=True)
            )
        else:
            row.value = item.model_copy(deep=True)

    def load_item(self, owner: str, thread_id: str, item_id: str) -> ThreadItem | None:
        row = self.items.get((owner, thread_id), {}).get(item_id)
        return None if row is None else row.value

    def delete_item(self, owner: str, thread_id: str, item_id: str) -> None:
        self.items.get((owner, thread_id), {}).pop(item_id, None)

    def thread_rows(self, owner: str) -> dict[str, _Row]:
        return {tid: row for (o, tid), row in self.threads.items() if o == owner}

    def item_rows(self, owner: str, thread_id: str) -> dict[str, _Row]:
        return dict(self.items.get((owner, thread_id), {}))


def expected_page(
    rows: dict[str, _Row], after: str | None, limit: int, order: str
) -> Page[Any] | None:
    """The page the contract demands, or None when `after` names no row (NotFoundError)."""
    ordered = sorted(rows.items(), key=lambda pair: pair[1].key, reverse=order == "desc")
    ids = [row_id for row_id, _ in ordered]
    if after is None:
        start = 0
    elif after in rows:
        start = ids.index(after) + 1
    else:
        return None
    window = ordered[start : start + limit]
    has_more = start + limit < len(ordered)
    return Page(
        data=[row.value for _, row in window],
        has_more=has_more,
        after=window[-1][0] if has_more else None,
    )
