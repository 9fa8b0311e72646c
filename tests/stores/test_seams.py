"""The seams for cross-cutting concerns: `codec=` on every store and `ForwardingStore`.

A codec that wraps every payload (a tagged base64 envelope, as an encrypting codec would write)
round-trips through the whole conformance suite on MemoryStore, SQLAlchemyStore (SQLite) and
AsyncpgStore, and what lands in the database is its text. The SQL stores use a database and a
schema of their own: the orphan sweep reads across owners, and other stores cannot read these
payloads. `ForwardingStore` passes the suites
too, and a wrapper built on it (`StoreWithAttachments`) still exposes retention and the
attachment index of the store it wraps.
"""

from __future__ import annotations

import asyncio
import base64
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from chatkit.types import Attachment, ThreadItem, ThreadMetadata

from chatkit_kit.attachments import StoreWithAttachments
from chatkit_kit.stores import (
    AttachmentIndex,
    ForwardingStore,
    JSONCodec,
    MemoryStore,
    RetentionStore,
    StoreCodec,
)
from chatkit_kit.testing import AttachmentIndexConformance, StrictStoreConformance
from tests.fixtures.context import Ctx

from .sql_support import Flavour, drop_schema, new_schema_name

_TAG = "ck1:"


class EnvelopeCodec:
    """JSON in a tagged base64 envelope; counts what it encodes and decodes."""

    def __init__(self) -> None:
        self.inner = JSONCodec()
        self.encoded = 0
        self.decoded = 0

    def _wrap(self, text: str) -> str:
        self.encoded += 1
        return _TAG + base64.b64encode(text.encode()).decode()

    def _unwrap(self, payload: str | bytes) -> str:
        text = payload.decode() if isinstance(payload, bytes) else payload
        assert text.startswith(_TAG), f"not written by this codec: {text[:40]!r}"
        self.decoded += 1
        return base64.b64decode(text[len(_TAG) :]).decode()

    def encode_thread(self, thread: ThreadMetadata) -> str:
        return self._wrap(self.inner.encode_thread(thread))

    def decode_thread(self, payload: str | bytes) -> ThreadMetadata:
        return self.inner.decode_thread(self._unwrap(payload))

    def decode_threads(self, payloads: Sequence[str | bytes]) -> list[ThreadMetadata]:
        return self.inner.decode_threads([self._unwrap(p) for p in payloads])

    def encode_item(self, item: ThreadItem) -> str:
        return self._wrap(self.inner.encode_item(item))

    def decode_item(self, payload: str | bytes) -> ThreadItem:
        return self.inner.decode_item(self._unwrap(payload))

    def decode_items(self, payloads: Sequence[str | bytes]) -> list[ThreadItem]:
        return self.inner.decode_items([self._unwrap(p) for p in payloads])

    def encode_attachment(self, attachment: Attachment) -> str:
        return self._wrap(self.inner.encode_attachment(attachment))

    def decode_attachment(self, payload: str | bytes) -> Attachment:
        return self.inner.decode_attachment(self._unwrap(payload))


def test_the_envelope_codec_is_a_store_codec() -> None:
    assert isinstance(EnvelopeCodec(), StoreCodec)
    assert isinstance(JSONCodec(), StoreCodec)


@pytest.mark.parametrize("bad", [object(), "json", JSONCodec])
def test_a_store_refuses_what_is_not_a_codec(bad: Any) -> None:
    with pytest.raises(TypeError, match="StoreCodec"):
        MemoryStore(codec=bad)


# The conformance suites through the codec, on every kind of store


class TestMemoryStoreWithCodec(StrictStoreConformance):
    def make_store(self) -> MemoryStore:
        return MemoryStore(codec=EnvelopeCodec())


class TestMemoryStoreWithCodecAttachmentIndex(AttachmentIndexConformance):
    def make_store(self) -> MemoryStore:
        return MemoryStore(codec=EnvelopeCodec())


class _SQLWithCodec:
    flavour: Flavour

    async def make_store(self) -> Any:
        return await self.flavour.make(codec=EnvelopeCodec())

    async def teardown_store(self, store: Any) -> None:
        await store.close()


async def _migrate(flavour: Flavour) -> None:
    async with await flavour.make() as store:
        await store.migrate()


@pytest.fixture(scope="module")
def codec_sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("codec") / "codec.db"
    asyncio.run(_migrate(Flavour("sqlite", None, path)))
    return path


@pytest.fixture(scope="module")
def codec_pg_schema(postgres_dsn: str) -> Iterator[str]:
    schema = new_schema_name()
    try:
        asyncio.run(_migrate(Flavour("asyncpg", postgres_dsn, schema=schema)))
        yield schema
    finally:
        drop_schema(postgres_dsn, schema)


class TestSQLiteStoreWithCodec(_SQLWithCodec, StrictStoreConformance):
    @pytest.fixture(autouse=True)
    def _database(self, codec_sqlite_db: Path) -> None:
        self.flavour = Flavour("sqlite", None, codec_sqlite_db)


class TestAsyncpgStoreWithCodec(_SQLWithCodec, AttachmentIndexConformance):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_dsn: str, codec_pg_schema: str) -> None:
        self.flavour = Flavour("asyncpg", postgres_dsn, schema=codec_pg_schema)


NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
ALICE = Ctx("alice")


async def test_the_database_holds_what_the_codec_wrote(tmp_path: Path) -> None:
    sqlite_db = tmp_path / "codec.db"
    codec = EnvelopeCodec()
    store = await Flavour("sqlite", None, sqlite_db).make(codec=codec)
    async with store:
        await store.migrate()
        await store.save_thread(ThreadMetadata(id="t1", created_at=NOW, title="hi"), ALICE)
        assert (await store.load_thread("t1", ALICE)).title == "hi"
        page = await store.load_threads(10, None, "asc", ALICE)
    assert [t.id for t in page.data] == ["t1"]
    assert codec.encoded == 1 and codec.decoded == 2
    with closing(sqlite3.connect(sqlite_db)) as conn:
        ((payload,),) = conn.execute("SELECT payload FROM chatkit_threads WHERE id = 't1'")
    assert payload.startswith(_TAG) and "hi" not in payload
    # A store without the codec cannot read it: the payload really is the codec's.
    plain = await Flavour("sqlite", None, sqlite_db).make()
    async with plain:
        with pytest.raises(ValueError):
            await plain.load_thread("t1", ALICE)


# ForwardingStore


class TestForwardingStoreConformance(StrictStoreConformance):
    def make_store(self) -> ForwardingStore[Any]:
        return ForwardingStore(MemoryStore())


class TestForwardingStoreAttachmentIndex(AttachmentIndexConformance):
    def make_store(self) -> ForwardingStore[Any]:
        return ForwardingStore(MemoryStore())


class TitleUpper(ForwardingStore[Any]):
    """A wrapper that states only what it changes."""

    async def load_thread(self, thread_id: str, context: Any) -> ThreadMetadata:
        thread = await super().load_thread(thread_id, context)
        return thread.model_copy(update={"title": (thread.title or "").upper()})


async def test_a_wrapper_changes_only_what_it_overrides() -> None:
    inner: MemoryStore[Any] = MemoryStore()
    store = TitleUpper(inner)
    await store.save_thread(ThreadMetadata(id="t1", created_at=NOW, title="hi"), ALICE)
    assert (await store.load_thread("t1", ALICE)).title == "HI"
    assert (await inner.load_thread("t1", ALICE)).title == "hi"
    page = await store.load_threads(10, None, "asc", ALICE)
    assert [t.title for t in page.data] == ["hi"]
    assert store.store is inner and repr(store) == f"TitleUpper({inner!r})"


async def test_wrappers_expose_retention_and_the_attachment_index() -> None:
    inner: MemoryStore[Any] = MemoryStore()

    class Presenter:
        async def present_attachment(self, attachment: Attachment, context: Any) -> Attachment:
            return attachment

    composed = StoreWithAttachments(inner, Presenter())
    assert isinstance(composed, ForwardingStore)
    assert isinstance(composed, RetentionStore) and isinstance(composed, AttachmentIndex)
    old = NOW - timedelta(days=400)
    for thread_id in ("a", "b"):
        await composed.save_thread(ThreadMetadata(id=thread_id, created_at=old), ALICE)
    assert await composed.prune(timedelta(days=30), dry_run=True) == 2
    assert await composed.list_thread_attachments("a", ALICE) == []
    assert await composed.erase_owner("alice", batch_size=1) == 2
    assert (await inner.load_threads(10, None, "asc", ALICE)).data == []
    assert await composed.list_unattached_attachments(NOW) == []
    assert await composed.delete_orphan_attachment("alice", "none") is False


async def test_a_wrapped_store_without_retention_says_so() -> None:
    class Bare(ForwardingStore[Any]):
        pass

    class UpstreamOnly(ForwardingStore[Any]):
        """Only the ChatKit `Store` API, as a store of another library would have."""

        def __getattribute__(self, name: str) -> Any:
            if name in ("erase_owner", "prune", "list_thread_attachments"):
                raise AttributeError(name)
            return super().__getattribute__(name)

    wrapper = Bare(UpstreamOnly(MemoryStore()))
    with pytest.raises(TypeError, match="UpstreamOnly, which has no erase_owner"):
        await wrapper.erase_owner("alice")
    with pytest.raises(TypeError, match="has no list_thread_attachments"):
        await wrapper.list_thread_attachments("t", ALICE)


def test_a_forwarding_store_needs_a_store() -> None:
    with pytest.raises(TypeError, match=r"chatkit\.store\.Store"):
        ForwardingStore(object())  # type: ignore[arg-type]
