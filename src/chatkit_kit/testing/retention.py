"""`RetentionConformance`: the rules of `erase_owner` and `prune`, as an opt-in pytest class.

Retention is a capability, not part of the ChatKit store contract: `StoreConformance` does not
check it, and a store without `erase_owner`/`prune` is not failed. Stores that offer it
(every chatkit-kit store does) subclass this class next to `StoreConformance`::

    from chatkit_kit.testing import RetentionConformance

    class TestMyStoreRetention(RetentionConformance):
        async def make_store(self):
            return MyStore(...)

Each test runs on its own event loop with fresh owners (new user ids), so the store never has
to be emptied between tests. `owner_key(store, context)` maps a context to the owner key the
store keys rows by (default: the store's own `owner_key`, else the user id).
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import pytest
from chatkit.store import NotFoundError, Store
from chatkit.types import (
    FileAttachment,
    InferenceOptions,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
)

from ..stores import RetentionStore

__all__ = ["RetentionConformance"]

T = TypeVar("T")

NOW = datetime.now(timezone.utc)
OLD = NOW - timedelta(days=400)
"""Activity well before the `older_than=timedelta(days=90)` the rules prune with."""
RECENT = NOW - timedelta(days=1)
RETENTION = timedelta(days=90)


@dataclass(frozen=True)
class _Ctx:
    user_id: str


def _message(thread_id: str, item_id: str, at: datetime) -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=at,
        content=[UserMessageTextContent(text=f"{item_id} at {at.isoformat()}")],
        attachments=[],
        inference_options=InferenceOptions(),
    )


class _Stopped(Exception):
    """Raised from a progress callback to interrupt a run, as a crash or deploy would."""


class RetentionConformance:
    """Rules for `erase_owner(owner)` and `prune(older_than, owner=None)`; subclass it."""

    def make_store(self) -> Store[Any] | Awaitable[Store[Any]]:
        raise NotImplementedError("RetentionConformance subclasses must define make_store()")

    def teardown_store(self, store: Any) -> Awaitable[None] | None:
        """Called after each test with the store `make_store` returned (default: close it)."""
        close = getattr(store, "close", None)
        return close() if callable(close) else None

    def make_context(self, user_id: str) -> Any:
        """The request context for `user_id` (default: an object with a `user_id`)."""
        return _Ctx(user_id)

    def owner_key(self, store: Any, context: Any) -> str:
        """The owner key `store` keeps `context`'s rows under."""
        resolve = getattr(store, "owner_key", None)
        if callable(resolve):
            return str(resolve(context))
        return str(context.user_id)

    # Running

    def _run(self, check: Callable[[Any], Coroutine[Any, Any, None]]) -> None:
        async def main() -> None:
            made = self.make_store()
            store = await made if inspect.isawaitable(made) else made
            try:
                if not isinstance(store, RetentionStore):
                    pytest.skip(
                        f"{type(store).__name__} does not offer erase_owner/prune "
                        "(an opt-in capability)"
                    )
                await check(store)
            finally:
                done = self.teardown_store(store)
                if inspect.isawaitable(done):
                    await done

        asyncio.run(main())

    def _user(self, store: Any) -> tuple[Any, str]:
        ctx = self.make_context(f"retention-{uuid.uuid4().hex[:12]}")
        return ctx, self.owner_key(store, ctx)

    @staticmethod
    async def _thread(store: Any, ctx: Any, thread_id: str, at: datetime, *items: datetime) -> None:
        await store.save_thread(ThreadMetadata(id=thread_id, created_at=at), ctx)
        for n, item_at in enumerate(items):
            await store.add_thread_item(thread_id, _message(thread_id, f"m{n}", item_at), ctx)

    @staticmethod
    async def _attachment(store: Any, ctx: Any, attachment_id: str, thread_id: str | None) -> None:
        attachment = FileAttachment(
            id=attachment_id, name="a.txt", mime_type="text/plain", thread_id=thread_id
        )
        await store.save_attachment(attachment, ctx)

    @staticmethod
    async def _exists(load: Awaitable[Any]) -> bool:
        try:
            await load
        except NotFoundError:
            return False
        return True

    # Rules

    def test_erase_owner_deletes_everything_of_that_owner_only(self) -> None:
        async def check(store: Any) -> None:
            alice, alice_key = self._user(store)
            bob, _ = self._user(store)
            for ctx in (alice, bob):
                await self._thread(store, ctx, "t1", OLD, OLD, RECENT)
                await self._thread(store, ctx, "t2", RECENT, RECENT)
                await self._attachment(store, ctx, "a_sent", "t1")
                await self._attachment(store, ctx, "a_unsent", None)

            assert await store.erase_owner(alice_key) == 2, "erase_owner returns threads deleted"

            assert (await store.load_threads(10, None, "asc", alice)).data == []
            for thread_id in ("t1", "t2"):
                assert not await self._exists(store.load_thread(thread_id, alice))
                items = await store.load_thread_items(thread_id, None, 10, "asc", alice)
                assert items.data == [], "erase_owner leaves no item behind"
            for attachment_id in ("a_sent", "a_unsent"):
                assert not await self._exists(store.load_attachment(attachment_id, alice))
            # Another owner's identical ids are untouched.
            assert len((await store.load_threads(10, None, "asc", bob)).data) == 2
            assert len((await store.load_thread_items("t1", None, 10, "asc", bob)).data) == 2
            assert await self._exists(store.load_attachment("a_unsent", bob))
            # Idempotent.
            assert await store.erase_owner(alice_key) == 0

        self._run(check)

    def test_prune_deletes_by_latest_activity(self) -> None:
        async def check(store: Any) -> None:
            ctx, key = self._user(store)
            await self._thread(store, ctx, "old", OLD, OLD, OLD)
            await self._thread(store, ctx, "old_empty", OLD)
            await self._thread(store, ctx, "revived", OLD, OLD, RECENT)
            await self._thread(store, ctx, "imported", RECENT, OLD)  # dated by its thread row
            await self._thread(store, ctx, "new", RECENT, RECENT)
            await self._attachment(store, ctx, "a_old", "old")
            await self._attachment(store, ctx, "a_new", "new")

            assert await store.prune(RETENTION, key, dry_run=True) == 2, "dry run counts"
            assert await self._exists(store.load_thread("old", ctx)), "dry run deletes nothing"

            assert await store.prune(RETENTION, key) == 2
            for gone in ("old", "old_empty"):
                assert not await self._exists(store.load_thread(gone, ctx))
                assert (await store.load_thread_items(gone, None, 10, "asc", ctx)).data == []
            assert not await self._exists(store.load_attachment("a_old", ctx))
            for kept in ("revived", "imported", "new"):
                assert await self._exists(store.load_thread(kept, ctx))
            revived = await store.load_thread_items("revived", None, 10, "asc", ctx)
            assert len(revived.data) == 2, "a kept thread keeps all its items"
            assert await self._exists(store.load_attachment("a_new", ctx))
            assert await store.prune(RETENTION, key) == 0, "idempotent"

        self._run(check)

    def test_prune_owner_limits_it_to_that_owner(self) -> None:
        async def check(store: Any) -> None:
            alice, alice_key = self._user(store)
            bob, _ = self._user(store)
            for ctx in (alice, bob):
                await self._thread(store, ctx, "old", OLD, OLD)
            assert await store.prune(RETENTION, alice_key) == 1
            assert not await self._exists(store.load_thread("old", alice))
            assert await self._exists(store.load_thread("old", bob))

        self._run(check)

    def test_interrupted_runs_resume(self) -> None:
        async def check(store: Any) -> None:
            ctx, key = self._user(store)
            for n in range(5):
                await self._thread(store, ctx, f"old{n}", OLD, OLD, OLD, OLD)

            def stop(_done: int) -> None:
                raise _Stopped

            with pytest.raises(_Stopped):
                await store.prune(RETENTION, key, batch_size=2, progress=stop)
            left = len((await store.load_threads(10, None, "asc", ctx)).data)
            assert left >= 1, "the interrupted run stopped early"
            assert await store.prune(RETENTION, key, batch_size=2) == left, "the rerun finishes"
            assert (await store.load_threads(10, None, "asc", ctx)).data == []

            other, other_key = self._user(store)
            for n in range(3):
                await self._thread(store, other, f"t{n}", RECENT, RECENT, RECENT)
            with pytest.raises(_Stopped):
                await store.erase_owner(other_key, batch_size=1, progress=stop)
            await store.erase_owner(other_key, batch_size=1)
            assert (await store.load_threads(10, None, "asc", other)).data == []
            for n in range(3):
                items = await store.load_thread_items(f"t{n}", None, 10, "asc", other)
                assert items.data == []

        self._run(check)

    def test_arguments_are_validated(self) -> None:
        async def check(store: Any) -> None:
            with pytest.raises(ValueError):
                await store.prune(timedelta(days=-1))
            with pytest.raises(TypeError):
                await store.prune(90)
            with pytest.raises(ValueError):
                await store.prune(RETENTION, batch_size=0)
            with pytest.raises(ValueError):
                await store.erase_owner("")

        self._run(check)
