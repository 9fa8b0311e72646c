"""The stateful test: random sequences of store operations by two owners against a model.

`StoreMachine` is bound to one rule run by `run_machine`, which makes a subclass carrying the
harness. Under the contract tier a listing must hold every row once with its latest payload in
an order either upsert policy allows, the same order on every page size; under the strict tier
it must match the reference model page for page (rows stay where they were first inserted).
Items carry their thread's id. `write_items` mostly saves a missing thread first, as ChatKit's
server does, and sometimes writes into a thread the owner has no row of (never saved, or
deleted): the strict tier demands NotFoundError and nothing stored, the contract tier accepts
that (any error, as a refusal) or the items being stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from chatkit.store import NotFoundError
from chatkit.types import Page, ThreadItem, ThreadMetadata
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from .. import strategies
from .._model import ReferenceModel, expected_page, listing_problem
from ._harness import Harness
from ._values import Loader, assistant, ids, row_difference, user_message, walk

_THREAD_IDS = st.sampled_from(["t1", "t'%_\\"])
_ITEM_IDS = st.sampled_from(["i1", "i2", "i3", "i_%"])
_ATTACHMENT_IDS = st.sampled_from(["a1", "a2"])
_STAMPS = st.sampled_from(
    [
        datetime(2026, 3, 1, 12, 0, 0, 500),
        datetime(2026, 3, 1, 12, 0, 0, 500),
        datetime(2026, 3, 1, 12, 0, 0, 501),
        datetime(2026, 3, 1, 11, 0, 0),
        datetime(2026, 3, 1, 12, 0, 1),
    ]
)
"""Naive, as the server stamps them (`datetimes-exact` is the rule about aware values)."""
_OWNERS = st.integers(0, 1)
_LIMITS = st.integers(1, 3)
_ORDERS = st.sampled_from(["asc", "desc"])


def _items_for(thread_id: str) -> st.SearchStrategy[ThreadItem]:
    """Cheap item types (item-round-trip covers every type) carrying `thread_id`."""
    tid = st.just(thread_id)
    return st.one_of(
        st.builds(assistant, _ITEM_IDS, tid, _STAMPS, st.text(max_size=5)),
        st.builds(user_message, _ITEM_IDS, tid, _STAMPS, st.text(max_size=5)),
        strategies.hidden_context_items(_ITEM_IDS, _STAMPS, tid),
        strategies.end_of_turn_items(_ITEM_IDS, _STAMPS, tid),
    )


_WRITES = _THREAD_IDS.flatmap(
    lambda tid: st.tuples(st.just(tid), st.lists(_items_for(tid), min_size=1, max_size=4))
)


class StoreMachine(RuleBasedStateMachine):
    """Twelve store operations for two owners, checked against `ReferenceModel`."""

    h: ClassVar[Harness]
    strict: ClassVar[bool]
    attachments: ClassVar[bool]
    item_writes: ClassVar[bool]

    def __init__(self) -> None:
        super().__init__()
        self.model = ReferenceModel()
        self.contexts = [self.h.context(), self.h.context()]

    def fail(self, detail: str) -> None:
        self.h.fail(detail)

    def _walk(
        self, load: Loader, rows: Any, limit: int, order: str, what: str, *, items: bool
    ) -> None:
        got = self.h.run(walk(self.h, load, limit, len(rows) + 2, what))
        if self.strict:
            expected = expected_page(rows, None, 10_000, order)
            assert expected is not None
            if got != expected.data:
                self.fail(
                    f"{what}: {order} walk (limit {limit}) gave {ids(got)}, model "
                    f"{ids(expected.data)}"
                )
            return
        problem = listing_problem(got, rows, order, insertion_order=items)
        if problem is not None:
            self.fail(f"{what}: {order} walk (limit {limit}): {problem}")
        whole = self.h.run(load(None, 1000))
        if ids(got) != ids(whole.data):
            self.fail(
                f"{what}: {order} walk with limit {limit} gave {ids(got)}, one page gave "
                f"{ids(whole.data)} (no stable order across pages)"
            )

    @rule(owner=_OWNERS, thread=strategies.thread_metadata(_THREAD_IDS, _STAMPS))
    def save_thread(self, owner: int, thread: ThreadMetadata) -> None:
        self.h.run(self.h.store.save_thread(thread, self.contexts[owner]))
        self.model.save_thread(str(owner), thread)

    @rule(owner=_OWNERS, thread_id=_THREAD_IDS)
    def load_thread(self, owner: int, thread_id: str) -> None:
        expected = self.model.load_thread(str(owner), thread_id)
        try:
            got = self.h.run(self.h.store.load_thread(thread_id, self.contexts[owner]))
        except NotFoundError:
            if expected is not None:
                self.fail(
                    f"load_thread({thread_id!r}) of owner {owner} raised NotFoundError; it "
                    "was saved"
                )
            return
        if expected is None:
            self.fail(f"load_thread({thread_id!r}) of owner {owner} loaded a thread never saved")
        if self.strict:
            problem = None if got == expected else row_difference(expected, got)
        else:
            first = self.model.thread_rows(str(owner))[thread_id].first_created_at
            problem = row_difference(expected, got, created_at_choices=(first,))
        if problem is not None:
            self.fail(f"load_thread({thread_id!r}) of owner {owner}: {problem}")

    @rule(owner=_OWNERS, limit=_LIMITS, order=_ORDERS)
    def load_threads(self, owner: int, limit: int, order: str) -> None:
        ctx = self.contexts[owner]
        self._walk(
            lambda after, n: self.h.store.load_threads(n, after, order, ctx),
            self.model.thread_rows(str(owner)),
            limit,
            order,
            f"load_threads({limit}, after, {order!r}) of owner {owner}",
            items=False,
        )

    @rule(owner=_OWNERS, thread_id=_THREAD_IDS)
    def delete_thread(self, owner: int, thread_id: str) -> None:
        self.h.run(self.h.store.delete_thread(thread_id, self.contexts[owner]))
        self.model.delete_thread(str(owner), thread_id)

    @precondition(lambda self: self.item_writes)
    @rule(
        owner=_OWNERS,
        writes=_WRITES,
        replace=st.booleans(),
        stamp=_STAMPS,
        save_first=st.sampled_from([True, True, True, True, False]),
    )
    def write_items(
        self,
        owner: int,
        writes: tuple[str, list[ThreadItem]],
        replace: bool,
        stamp: datetime,
        save_first: bool,
    ) -> None:
        thread_id, items = writes
        ctx = self.contexts[owner]
        if not self.model.has_thread(str(owner), thread_id):
            if not save_first:
                self._write_without_thread(owner, thread_id, items, replace)
                return
            # The server always saves a thread before writing items into it.
            new = ThreadMetadata(id=thread_id, created_at=stamp)
            self.h.run(self.h.store.save_thread(new, ctx))
            self.model.save_thread(str(owner), new)
        write = self.h.store.save_item if replace else self.h.store.add_thread_item
        for item in items:
            self.h.run(write(thread_id, item, ctx))
            self.model.upsert_item(str(owner), thread_id, item)

    def _write_without_thread(
        self, owner: int, thread_id: str, items: list[ThreadItem], replace: bool
    ) -> None:
        """Items into a thread the owner has no row of (never saved, or deleted)."""
        write = self.h.store.save_item if replace else self.h.store.add_thread_item
        for item in items:
            shown = f"{write.__name__}({thread_id!r}, {item.id!r}) into a thread that has no row"
            try:
                self.h.run(write(thread_id, item, self.contexts[owner]))
            except NotFoundError:
                continue  # refused: the model keeps nothing, so the checks see any leftover
            except Exception as exc:
                # ChatKit never does this, so the contract tier takes any error as a refusal
                # (e.g. a foreign key's integrity error); the strict tier names NotFoundError.
                if self.strict:
                    self.fail(f"{shown} raised {type(exc).__name__}, not NotFoundError")
                continue
            if self.strict:
                self.fail(f"{shown} (never saved, or deleted) did not raise NotFoundError")
            self.model.upsert_item(str(owner), thread_id, item)

    @rule(owner=_OWNERS, thread_id=_THREAD_IDS, item_id=_ITEM_IDS)
    def load_item(self, owner: int, thread_id: str, item_id: str) -> None:
        expected = self.model.load_item(str(owner), thread_id, item_id)
        try:
            got = self.h.run(self.h.store.load_item(thread_id, item_id, self.contexts[owner]))
        except NotFoundError:
            if expected is not None:
                self.fail(f"load_item({thread_id!r}, {item_id!r}) raised; the model has it")
            return
        if expected is None:
            self.fail(
                f"load_item({thread_id!r}, {item_id!r}) of owner {owner} loaded an item never "
                "written (or deleted)"
            )
        problem = row_difference(expected, got)
        if problem is not None:
            self.fail(f"load_item({thread_id!r}, {item_id!r}) of owner {owner}: {problem}")

    @rule(owner=_OWNERS, thread_id=_THREAD_IDS, item_id=_ITEM_IDS)
    def delete_thread_item(self, owner: int, thread_id: str, item_id: str) -> None:
        self.h.run(self.h.store.delete_thread_item(thread_id, item_id, self.contexts[owner]))
        self.model.delete_item(str(owner), thread_id, item_id)

    @rule(owner=_OWNERS, thread_id=_THREAD_IDS, limit=_LIMITS, order=_ORDERS)
    def load_thread_items(self, owner: int, thread_id: str, limit: int, order: str) -> None:
        ctx = self.contexts[owner]
        self._walk(
            lambda after, n: self.h.store.load_thread_items(thread_id, after, n, order, ctx),
            self.model.item_rows(str(owner), thread_id),
            limit,
            order,
            f"load_thread_items({thread_id!r}, after, {limit}, {order!r}) of owner {owner}",
            items=True,
        )

    @rule(owner=_OWNERS, thread_id=_THREAD_IDS, after=_ITEM_IDS, limit=_LIMITS, order=_ORDERS)
    def load_page_after(
        self, owner: int, thread_id: str, after: str, limit: int, order: str
    ) -> None:
        ctx = self.contexts[owner]
        rows = self.model.item_rows(str(owner), thread_id)
        shown = f"{order} page after {after!r} (limit {limit}) of {thread_id!r}"
        try:
            got = self.h.run(self.h.store.load_thread_items(thread_id, after, limit, order, ctx))
        except NotFoundError:
            if after in rows:
                self.fail(f"{shown} raised NotFoundError; the model has that row")
            return
        if after not in rows:
            if self.strict or got.data or got.has_more:
                self.fail(f"{shown}: unknown cursor returned {ids(got.data)}")
            return
        if self.strict:
            expected = expected_page(rows, after, limit, order)
            assert expected is not None
        else:
            whole = self.h.run(self.h.store.load_thread_items(thread_id, None, 1000, order, ctx))
            listed = ids(whole.data)
            start = listed.index(after) + 1 if after in listed else 0
            window = whole.data[start : start + limit]
            more = start + limit < len(listed)
            expected = Page(data=window, has_more=more, after=window[-1].id if more else None)
        # `after` on the last page is ignored by the server: the contract tier accepts any.
        got_after = got.after if got.has_more or self.strict else expected.after
        if (got.data, got.has_more, got_after) != (
            expected.data,
            expected.has_more,
            expected.after,
        ):
            self.fail(
                f"{shown}: {ids(got.data)} has_more={got.has_more} after={got.after!r}; "
                f"expected {ids(expected.data)} has_more={expected.has_more} "
                f"after={expected.after!r}"
            )

    @precondition(lambda self: self.attachments)
    @rule(owner=_OWNERS, attachment=strategies.attachments(_ATTACHMENT_IDS))
    def save_attachment(self, owner: int, attachment: Any) -> None:
        self.h.run(self.h.store.save_attachment(attachment, self.contexts[owner]))
        self.model.attachments[(str(owner), attachment.id)] = attachment.model_copy(deep=True)

    @precondition(lambda self: self.attachments)
    @rule(owner=_OWNERS, attachment_id=_ATTACHMENT_IDS)
    def load_attachment(self, owner: int, attachment_id: str) -> None:
        expected = self.model.attachments.get((str(owner), attachment_id))
        try:
            got = self.h.run(self.h.store.load_attachment(attachment_id, self.contexts[owner]))
        except NotFoundError:
            if expected is not None:
                self.fail(f"load_attachment({attachment_id!r}) raised; the model has it")
            return
        if expected is None:
            self.fail(f"load_attachment({attachment_id!r}) loaded an attachment never saved")
        problem = row_difference(expected, got)
        if problem is not None:
            self.fail(f"load_attachment({attachment_id!r}) of owner {owner}: {problem}")

    @precondition(lambda self: self.attachments)
    @rule(owner=_OWNERS, attachment_id=_ATTACHMENT_IDS)
    def delete_attachment(self, owner: int, attachment_id: str) -> None:
        self.h.run(self.h.store.delete_attachment(attachment_id, self.contexts[owner]))
        self.model.attachments.pop((str(owner), attachment_id), None)

    @invariant()
    def thread_lists_match(self) -> None:
        for owner, ctx in enumerate(self.contexts):
            got = self.h.run(self.h.store.load_threads(1000, None, "desc", ctx))
            problem = listing_problem(got.data, self.model.thread_rows(str(owner)), "desc")
            if problem is not None:
                self.fail(f"owner {owner}'s threads: {problem}")


def run_machine(h: Harness, *, strict: bool) -> None:
    """Run `StoreMachine` against the harness's store under the profile's settings."""
    bound = type(
        "StoreMachine",
        (StoreMachine,),
        {
            "h": h,
            "strict": strict,
            "attachments": h.capabilities.attachments,
            "item_writes": h.capabilities.item_writes,
        },
    )
    chosen = h.stateful_settings
    if strict:
        chosen = settings(chosen, max_examples=h.profile["strict_stateful_examples"])
    run_state_machine_as_test(bound, settings=chosen)
