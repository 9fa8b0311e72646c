"""A deliberately simple reference model of the store contract, for the stateful test.

It keeps plain dicts and sorts on every read: slow, but short enough to be obviously right. Each
row remembers two sort keys: where it was first inserted (stores that keep an upserted row in
place) and where its latest write would put it (stores that re-sort by the new `created_at`).
The contract tier accepts either; the strict tier demands the first.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from chatkit.types import Attachment, Page, ThreadItem, ThreadMetadata

from ..stores._rules import sort_key
from .conformance._values import row_difference, short


@dataclass
class _Row:
    key: tuple[int, int]
    """(sort key of the first write's created_at, insertion counter): keep-position order."""
    latest: tuple[int, int]
    """The same for the latest write: re-sort-on-upsert order."""
    value: Any
    first_created_at: Any = None
    """The first write's created_at (a store may keep a thread's on upsert)."""


@dataclass
class ReferenceModel:
    """Expected store state per owner: threads, items per thread, attachments."""

    threads: dict[tuple[str, str], _Row] = field(default_factory=dict)
    items: dict[tuple[str, str], dict[str, _Row]] = field(default_factory=dict)
    attachments: dict[tuple[str, str], Attachment] = field(default_factory=dict)
    _seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def _upsert(self, rows: dict[Any, _Row], key: Any, created_at: Any, value: Any) -> None:
        position = (sort_key(created_at), next(self._seq))
        row = rows.get(key)
        if row is None:
            rows[key] = _Row(position, position, value, created_at)
        else:
            row.latest, row.value = position, value

    def save_thread(self, owner: str, thread: ThreadMetadata) -> None:
        meta = ThreadMetadata(
            **{name: getattr(thread, name) for name in ThreadMetadata.model_fields}
        ).model_copy(deep=True)
        self._upsert(self.threads, (owner, thread.id), thread.created_at, meta)

    def load_thread(self, owner: str, thread_id: str) -> ThreadMetadata | None:
        row = self.threads.get((owner, thread_id))
        return None if row is None else row.value

    def has_thread(self, owner: str, thread_id: str) -> bool:
        """Whether the owner has a row of this thread (saved, not deleted since).

        Under the strict tier an item write into a thread without a row raises NotFoundError
        and changes nothing; the contract tier also accepts the item being stored.
        """
        return (owner, thread_id) in self.threads

    def delete_thread(self, owner: str, thread_id: str) -> None:
        self.threads.pop((owner, thread_id), None)
        self.items.pop((owner, thread_id), None)

    def upsert_item(self, owner: str, thread_id: str, item: ThreadItem) -> None:
        rows = self.items.setdefault((owner, thread_id), {})
        self._upsert(rows, item.id, item.created_at, item.model_copy(deep=True))

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
    """The page the strict tier demands, or None when `after` names no row (NotFoundError)."""
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


def listing_problem(
    got: list[Any],
    rows: dict[str, _Row],
    order: str,
    *,
    insertion_order: bool = False,
    ordered: bool = True,
) -> str | None:
    """What is wrong with a complete listing under the contract tier, or None.

    Every row exactly once with its latest payload (as `row_difference` compares: a thread's
    created_at may be kept from its first write, or come back in UTC), in `created_at` order
    by either upsert policy (keep the first position, or re-sort by the latest write); ties in
    any order. With `insertion_order` (items: the server adds them in time order), the order
    of the writes is accepted too. Without `ordered`, any order is accepted (racing writes).
    """
    got_ids = [row.id for row in got]
    if len(set(got_ids)) != len(got_ids):
        twice = sorted({i for i in got_ids if got_ids.count(i) > 1})
        return f"rows listed more than once: {short(twice)}"
    if set(got_ids) != set(rows):
        missing, extra = sorted(set(rows) - set(got_ids)), sorted(set(got_ids) - set(rows))
        return f"listing {short(got_ids)}: missing {short(missing)}, unexpected {short(extra)}"
    for row in got:
        problem = row_difference(
            rows[row.id].value, row, created_at_choices=(rows[row.id].first_created_at,)
        )
        if problem is not None:
            return problem
    if not ordered:
        return None
    for policy, part in (("key", 0), ("latest", 0), ("key", 1), ("latest", 1)):
        if part == 1 and not insertion_order:
            continue
        stamps = [getattr(rows[i], policy)[part] for i in got_ids]
        if order == "desc":
            stamps.reverse()
        if all(a <= b for a, b in itertools.pairwise(stamps)):
            return None
    return f"{order} listing {short(got_ids)} is not in created_at order"
