"""Encryption at rest on every kind of store: no plaintext in the stored rows, ciphertext bound
to its row (copies raise `DecryptionError`), crypto-shredding by `erase_owner`, live migration of
clear rows, data-key and KEK rotation, the bounded key cache."""

from __future__ import annotations

import base64
import copy
import json
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    FileAttachment,
    ThreadMetadata,
)

from chatkit_kit.encryption import (
    DataKeyCache,
    DataKeyDestroyedError,
    DecryptionError,
    EncryptedStore,
    EnvelopeCodec,
    KeyProviderError,
    LocalKeyProvider,
    OwnerKeys,
    encrypt_existing,
    rotate_data_key,
    rotate_kek,
)
from chatkit_kit.errors import EncryptedPayloadError
from chatkit_kit.stores import JSONCodec, MemoryStore, StoredPayload

from . import encryption_support
from .encryption_support import (
    KEYRING,
    MARKER,
    encrypted_sql,
    provider,
)
from .sql_support import Flavour, admin_execute, mysql_execute

# This module's own databases (tests/stores/encryption_support.py says why).
pg_schema = encryption_support.pg_schema
mysql_database = encryption_support.mysql_database
sqlite_db = encryption_support.sqlite_db

KINDS = ("memory", "sqlite", "asyncpg", "sqlalchemy+psycopg", "mysql+asyncmy")
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def ctx(owner: str) -> dict[str, str]:
    return {"user_id": owner}


def thread(thread_id: str, title: str = MARKER) -> ThreadMetadata:
    return ThreadMetadata(id=thread_id, created_at=NOW, title=f"title {title}")


def message(item_id: str, thread_id: str, text: str = MARKER) -> AssistantMessageItem:
    return AssistantMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=NOW,
        content=[AssistantMessageContent(text=f"secret {text}")],
    )


def attachment(attachment_id: str, thread_id: str | None = None) -> FileAttachment:
    return FileAttachment(
        id=attachment_id, name=f"{MARKER}.pdf", mime_type="application/pdf", thread_id=thread_id
    )


class Raw:
    """SQL on the store's tables behind its back (or the memory store's dicts)."""

    def __init__(self, kind: str, flavour: Flavour | None, inner: Any) -> None:
        self.kind, self.flavour, self.inner = kind, flavour, inner

    def table(self, name: str) -> str:
        assert self.flavour is not None
        if self.flavour.is_postgres:
            return f'"{self.flavour.schema}".chatkit_{name}'
        return f"chatkit_{name}"

    def run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        flavour = self.flavour
        assert flavour is not None
        if flavour.is_postgres:
            assert flavour.dsn is not None
            return admin_execute(flavour.dsn, sql, params)
        if flavour.is_mysql:
            assert flavour.dsn is not None
            return mysql_execute(flavour.dsn, sql, params)
        assert flavour.sqlite_path is not None
        with sqlite3.connect(flavour.sqlite_path) as conn:
            rows = conn.execute(sql.replace("%s", "?"), params).fetchall()
        conn.close()
        return rows

    def everything(self, owner: str) -> str:
        """Every stored byte of `owner` as text (payloads, keys, ids)."""
        if self.kind == "memory":
            store = self.inner
            return repr(
                (
                    store._threads.get(owner) and store._threads[owner].payloads,
                    {k: v.payloads for k, v in store._items.items() if k[0] == owner},
                    {k: v for k, v in store._attachments.items() if k[0] == owner},
                    store._data_keys.get(owner),
                )
            )
        parts = []
        for name in ("threads", "thread_items", "attachments", "data_keys"):
            rows = self.run(f"SELECT * FROM {self.table(name)} WHERE owner = %s", (owner,))
            parts.append(repr(rows))
        return "\n".join(parts)

    def copy_item(
        self,
        owner: str,
        thread_id: str,
        item_id: str,
        to_owner: str,
        to_thread: str,
        to_id: str | None = None,
    ) -> None:
        if self.kind == "memory":
            from chatkit_kit.stores import memory

            payload = self.inner._items[(owner, thread_id)].payloads[item_id]
            items = self.inner._items.setdefault((to_owner, to_thread), memory._Collection())
            items.upsert(to_id or item_id, NOW, payload, 10**9)
            return
        items = self.table("thread_items")
        (payload,) = self.run(
            f"SELECT payload FROM {items} WHERE owner = %s AND thread_id = %s AND id = %s",
            (owner, thread_id, item_id),
        )[0]
        self.run(
            f"INSERT INTO {items} (owner, thread_id, id, sort_key, payload) "
            "VALUES (%s, %s, %s, %s, %s)",
            (to_owner, to_thread, to_id or item_id, 1, payload),
        )

    def copy_row(self, kind: str, owner: str, row_id: str, to_id: str, thread_id: str = "") -> None:
        """Copy `owner`'s row `row_id` (a thread, an item of `thread_id`, an attachment) onto
        the new row id `to_id` of the same owner (and thread), payload and all."""
        if self.kind == "memory":
            from chatkit_kit.stores import memory

            if kind == "thread":
                payload = self.inner._threads[owner].payloads[row_id]
                self.inner._threads[owner].upsert(to_id, NOW, payload, 10**9)
            elif kind == "item":
                items = self.inner._items[(owner, thread_id)]
                items.upsert(to_id, NOW, items.payloads[row_id], 10**9)
            else:
                self.inner._attachments[(owner, to_id)] = self.inner._attachments[(owner, row_id)]
                saved = self.inner._attachment_saved_at[(owner, row_id)]
                self.inner._attachment_saved_at[(owner, to_id)] = saved
            del memory
            return
        if kind == "thread":
            self.put_thread_payload(owner, to_id, self.thread_payload(owner, row_id))
        elif kind == "item":
            self.copy_item(owner, thread_id, row_id, owner, thread_id, to_id=to_id)
        else:
            table = self.table("attachments")
            self.run(
                f"INSERT INTO {table} (owner, id, thread_id, payload) "
                f"SELECT owner, %s, thread_id, payload FROM {table} WHERE owner = %s AND id = %s",
                (to_id, owner, row_id),
            )

    def thread_payload(self, owner: str, thread_id: str) -> str:
        if self.kind == "memory":
            return str(self.inner._threads[owner].payloads[thread_id])
        sql = f"SELECT payload FROM {self.table('threads')} WHERE owner = %s AND id = %s"
        return str(self.run(sql, (owner, thread_id))[0][0])

    def put_thread_payload(self, owner: str, thread_id: str, payload: str) -> None:
        """Insert (or overwrite) a thread row with `payload`: a restored backup row."""
        if self.kind == "memory":
            from chatkit_kit.stores import memory

            threads = self.inner._threads.setdefault(owner, memory._Collection())
            threads.upsert(thread_id, NOW, payload, 10**9)
            return
        threads = self.table("threads")
        self.run(f"DELETE FROM {threads} WHERE owner = %s AND id = %s", (owner, thread_id))
        self.run(
            f"INSERT INTO {threads} (owner, id, sort_key, payload) VALUES (%s, %s, %s, %s)",
            (owner, thread_id, 1, payload),
        )


@pytest.fixture(params=KINDS)
def kind_flavour(request: pytest.FixtureRequest) -> tuple[str, Flavour | None]:
    kind: str = request.param
    if kind == "memory":
        return kind, None
    if kind == "sqlite":
        return kind, Flavour("sqlite", None, request.getfixturevalue("sqlite_db"))
    if kind.startswith("mysql"):
        return kind, Flavour(kind, request.getfixturevalue("mysql_database"))
    dsn = request.getfixturevalue("postgres_dsn")
    return kind, Flavour(kind, dsn, schema=request.getfixturevalue("pg_schema"))


@pytest.fixture
async def encrypted(
    kind_flavour: tuple[str, Flavour | None],
) -> AsyncIterator[tuple[EncryptedStore[Any], Raw]]:
    kind, flavour = kind_flavour
    if flavour is None:
        inner = MemoryStore(codec=EnvelopeCodec(accept_clear=True))
        yield EncryptedStore(inner, provider()), Raw(kind, None, inner)
        return
    store = await encrypted_sql(flavour, accept_clear=True)
    try:
        yield store, Raw(kind, flavour, store.store)
    finally:
        await store.store.close()  # type: ignore[attr-defined]


def owner_name() -> str:
    return f"enc-{uuid.uuid4().hex[:10]}"


async def fill(store: EncryptedStore[Any], owner: str) -> None:
    await store.save_thread(thread("t1"), ctx(owner))
    await store.save_thread(thread("t2"), ctx(owner))
    await store.add_thread_item("t1", message("i1", "t1"), ctx(owner))
    await store.add_thread_item("t1", message("i2", "t1"), ctx(owner))
    await store.save_attachment(attachment("a1", "t1"), ctx(owner))
    await store.save_attachment(attachment("a2"), ctx(owner))


async def test_no_plaintext_is_stored(encrypted: tuple[EncryptedStore[Any], Raw]) -> None:
    store, raw = encrypted
    owner = owner_name()
    await fill(store, owner)
    stored = raw.everything(owner)
    assert "ckenc1:" in stored and "'t1'" in stored  # sealed payloads beside clear ids
    assert MARKER not in stored
    # ...and everything reads back through the store.
    assert (await store.load_thread("t1", ctx(owner))).title == f"title {MARKER}"
    items = await store.load_thread_items("t1", None, 10, "asc", ctx(owner))
    assert [i.id for i in items.data] == ["i1", "i2"]
    assert (await store.load_attachment("a2", ctx(owner))).name == f"{MARKER}.pdf"


async def test_a_row_copied_to_another_owner_or_thread_does_not_decrypt(
    encrypted: tuple[EncryptedStore[Any], Raw],
) -> None:
    store, raw = encrypted
    owner, other = owner_name(), owner_name()
    await fill(store, owner)
    await store.save_thread(thread("t1", "theirs"), ctx(other))
    raw.copy_item(owner, "t1", "i1", other, "t1")
    with pytest.raises(DecryptionError):
        await store.load_item("t1", "i1", ctx(other))
    with pytest.raises(DecryptionError):
        await store.load_thread_items("t1", None, 10, "asc", ctx(other))
    raw.copy_item(owner, "t1", "i2", owner, "t2")
    with pytest.raises(DecryptionError, match="another thread"):
        await store.load_item("t2", "i2", ctx(owner))
    # A thread payload put under another thread id of the same owner.
    raw.put_thread_payload(owner, "t3", raw.thread_payload(owner, "t1"))
    with pytest.raises(DecryptionError):
        await store.load_thread("t3", ctx(owner))
    # The originals still read.
    assert (await store.load_item("t1", "i1", ctx(owner))).id == "i1"


async def test_erase_owner_shreds_the_data_key_first(
    encrypted: tuple[EncryptedStore[Any], Raw],
) -> None:
    store, raw = encrypted
    owner = owner_name()
    await fill(store, owner)
    backup = raw.thread_payload(owner, "t1")
    assert await store.erase_owner(owner) == 2
    assert await store.key_table.load_data_keys(owner) == []
    raw.put_thread_payload(owner, "t1", backup)  # a restored backup
    with pytest.raises(DataKeyDestroyedError):
        await store.load_thread("t1", ctx(owner))
    # The owner can start again, with a new key that does not open the old rows.
    await store.save_thread(thread("t9", "new"), ctx(owner))
    assert (await store.load_thread("t9", ctx(owner))).title == "title new"
    with pytest.raises(DecryptionError):
        await store.load_thread("t1", ctx(owner))


async def test_clear_rows_read_during_migration_and_get_encrypted(
    encrypted: tuple[EncryptedStore[Any], Raw],
) -> None:
    store, raw = encrypted
    owner = owner_name()
    clear = '{"id":"c1","created_at":"2026-12-01T00:00:00Z","title":"clear ' + MARKER + '",'
    clear += '"status":{"type":"active"},"metadata":{}}'
    raw.put_thread_payload(owner, "c1", clear)
    await store.save_thread(thread("t1"), ctx(owner))
    page = await store.load_threads(10, None, "asc", ctx(owner))
    assert sorted(t.id for t in page.data) == ["c1", "t1"]  # mixed rows read
    report = await encrypt_existing(store, batch_size=2)
    assert report.rewritten >= 1 and report.remaining == 0
    assert MARKER not in raw.everything(owner)
    assert (await store.load_thread("c1", ctx(owner))).title == f"clear {MARKER}"
    # Without accept_clear a clear row is refused, not served.
    strict = EnvelopeCodec()
    with pytest.raises(DecryptionError, match="not encrypted"):
        strict.decode_thread(clear)


async def test_data_key_rotation_reencrypts_and_retires(
    encrypted: tuple[EncryptedStore[Any], Raw],
) -> None:
    store, raw = encrypted
    owner = owner_name()
    await fill(store, owner)
    before = raw.thread_payload(owner, "t1")
    report = await rotate_data_key(store, owner, batch_size=2, retire=True)
    assert report.rewritten == 6 and report.remaining == 0
    assert [k.version for k in await store.key_table.load_data_keys(owner)] == [2]
    assert raw.thread_payload(owner, "t1") != before
    assert (await store.load_item("t1", "i2", ctx(owner))).id == "i2"
    assert (await store.load_attachment("a1", ctx(owner))).thread_id == "t1"
    # Another rotation, "interrupted" after one row: resume finishes it without a new version.
    await store.new_data_key(owner, await store.load_keys(owner, refresh=True))
    (first,) = await store.key_table.payload_rows(
        "thread", StoredPayload("thread", owner, "", "", ""), 1
    )
    assert await store.reseal_row(first, await store.load_keys(owner, refresh=True))
    again = await rotate_data_key(store, owner, batch_size=5, resume=True)
    assert again.rewritten == 5 and again.remaining == 0
    assert [k.version for k in await store.key_table.load_data_keys(owner)] == [2, 3]
    assert len((await store.load_threads(10, None, "asc", ctx(owner))).data) == 2


async def test_kek_rotation_rewraps_data_keys_only(
    encrypted: tuple[EncryptedStore[Any], Raw],
) -> None:
    store, raw = encrypted
    owner = owner_name()
    await fill(store, owner)
    payload = raw.thread_payload(owner, "t1")
    ring = LocalKeyProvider.new_keyring("k2", KEYRING)
    both = LocalKeyProvider.from_json(ring)
    rotated = EncryptedStore(store.store, both)
    report = await rotate_kek(rotated, batch_size=1)
    assert report.rewrapped >= 1
    assert {k.kek_id for k in await store.key_table.load_data_keys(owner)} == {"k2"}
    assert raw.thread_payload(owner, "t1") == payload  # no payload rewritten
    only_new = json.loads(ring)
    del only_new["keys"]["k1"]
    reader = EncryptedStore(store.store, LocalKeyProvider.from_json(json.dumps(only_new)))
    assert (await reader.load_thread("t1", ctx(owner))).id == "t1"
    # The old provider alone no longer unwraps the rotated keys.
    with pytest.raises(KeyProviderError):
        await EncryptedStore(store.store, provider()).load_thread("t1", ctx(owner))
    # Tests share the database, whose every data key was rewrapped: wrap them back under k1.
    back = json.loads(ring)
    back["current"] = "k1"
    await rotate_kek(EncryptedStore(store.store, LocalKeyProvider.from_json(json.dumps(back))))


async def test_sweeps_across_owners_load_each_owners_key(
    encrypted: tuple[EncryptedStore[Any], Raw],
) -> None:
    store, _ = encrypted
    owners = [owner_name() for _ in range(3)]
    for owner in owners:
        await store.save_attachment(attachment(f"orphan-{owner}"), ctx(owner))
    cold = EncryptedStore(store.store, provider())  # nothing cached
    found = await cold.list_unattached_attachments(datetime.now(timezone.utc) + timedelta(1), 500)
    mine = {s.owner for s in found if s.owner in owners}
    assert mine == set(owners)
    assert all(s.attachment.name == f"{MARKER}.pdf" for s in found if s.owner in owners)


class CountingProvider(LocalKeyProvider):
    unwraps = 0

    async def unwrap(self, kek_id: str, wrapped: bytes, owner: str) -> bytes:
        CountingProvider.unwraps += 1
        return await super().unwrap(kek_id, wrapped, owner)


async def test_the_key_cache_is_bounded_and_saves_unwraps() -> None:
    keys = json.loads(KEYRING)
    counting = CountingProvider({"k1": base64.b64decode(keys["keys"]["k1"])}, "k1")
    store = EncryptedStore(
        MemoryStore(codec=EnvelopeCodec()), counting, cache=DataKeyCache(max_owners=2)
    )
    for owner in ("a", "b", "c"):
        await store.save_thread(thread("t"), ctx(owner))
    assert len(store.cache) == 2
    CountingProvider.unwraps = 0
    for _ in range(5):
        await store.load_thread("t", ctx("c"))
    assert CountingProvider.unwraps == 0  # cached
    await store.load_thread("t", ctx("a"))  # evicted: unwrapped again
    assert CountingProvider.unwraps == 1 and len(store.cache) == 2


def test_local_provider_from_env_and_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHATKIT_KIT_KEYRING", KEYRING)
    assert LocalKeyProvider.from_env().current_kek_id == "k1"
    path = tmp_path / "keyring.json"
    path.write_text(LocalKeyProvider.new_keyring("k2", KEYRING))
    monkeypatch.setenv("CHATKIT_KIT_KEYRING", f"@{path}")
    assert LocalKeyProvider.from_env().kek_ids == ["k1", "k2"]
    with pytest.raises(ValueError, match="keyring"):
        LocalKeyProvider.from_json('{"current": "x"}')


async def test_the_codec_refuses_to_run_outside_an_encrypted_store() -> None:
    with pytest.raises(RuntimeError, match="EncryptedStore"):
        EnvelopeCodec().encode_thread(thread("t"))
    with pytest.raises(TypeError, match="EnvelopeCodec"):
        EncryptedStore(MemoryStore(), provider())


async def test_an_altered_payload_is_a_decryption_error_never_garbage() -> None:
    inner = MemoryStore(codec=EnvelopeCodec())
    store = EncryptedStore(inner, provider())
    await store.save_thread(thread("t"), ctx("alice"))
    payload = inner._threads["alice"].payloads["t"]
    for position in (len("ckenc1:") + 2, len(payload) // 2, len(payload) - 3):
        flipped = "A" if payload[position] != "A" else "B"
        inner._threads["alice"].payloads["t"] = (
            payload[:position] + flipped + payload[position + 1 :]
        )
        with pytest.raises(DecryptionError):
            await store.load_thread("t", ctx("alice"))
    inner._threads["alice"].payloads["t"] = "ckenc1:not base64 at all!"
    with pytest.raises(DecryptionError, match="not a valid"):
        await store.load_thread("t", ctx("alice"))


async def test_a_rewrite_never_overwrites_a_concurrent_write(
    encrypted: tuple[EncryptedStore[Any], Raw],
) -> None:
    store, _ = encrypted
    owner = owner_name()
    await store.save_thread(thread("t1", "old"), ctx(owner))
    (row,) = await store.key_table.payload_rows(
        "thread", StoredPayload("thread", owner, "", "", ""), 1
    )
    await store.save_thread(thread("t1", "new"), ctx(owner))  # the app writes meanwhile
    assert not await store.reseal_row(row, await store.load_keys(owner, refresh=True))
    assert (await store.load_thread("t1", ctx(owner))).title == "title new"


async def plain_store(raw: Raw) -> Any:
    """A store without encryption on the same rows (the memory store: a view on its dicts)."""
    if raw.flavour is None:
        view = copy.copy(raw.inner)
        view._codec = JSONCodec()
        return view
    return await raw.flavour.make()


async def test_a_plain_store_reading_encrypted_rows_names_them(
    encrypted: tuple[EncryptedStore[Any], Raw], caplog: pytest.LogCaptureFixture
) -> None:
    store, raw = encrypted
    owner = owner_name()
    await fill(store, owner)
    plain = await plain_store(raw)
    try:
        with pytest.raises(EncryptedPayloadError, match="wrap it in") as raised:
            await plain.load_thread("t1", ctx(owner))
        assert isinstance(raised.value, DecryptionError)
        assert (raised.value.kind, raised.value.owner, raised.value.row_id) == (
            "thread",
            owner,
            "t1",
        )
        with pytest.raises(EncryptedPayloadError, match="thread"):
            await plain.load_threads(10, None, "desc", ctx(owner))
        with pytest.raises(EncryptedPayloadError) as raised:
            await plain.load_thread_items("t1", None, 10, "asc", ctx(owner))
        assert (raised.value.kind, raised.value.row_id) == ("item", "i1")
        with pytest.raises(EncryptedPayloadError, match="item 'i2'"):
            await plain.load_item("t1", "i2", ctx(owner))
        with pytest.raises(EncryptedPayloadError) as raised:
            await plain.load_attachment("a2", ctx(owner))
        assert (raised.value.kind, raised.value.row_id) == ("attachment", "a2")
        # The orphan sweep of the plain store skips the encrypted rows (it cannot judge them),
        # reading past them to fill its page, and logs how many it skipped.
        clear_owner = owner_name()
        await plain.save_attachment(attachment("orphan"), ctx(clear_owner))
        later = datetime.now(timezone.utc) + timedelta(days=1)
        with caplog.at_level(logging.WARNING, logger="chatkit_kit.stores"):
            found = await plain.list_unattached_attachments(later, 500)
        assert ("orphan", clear_owner) in {(s.attachment.id, s.owner) for s in found}
        assert owner not in {s.owner for s in found}
        assert "skipped" in caplog.text and "encrypted attachment rows" in caplog.text
        (first,) = await plain.list_unattached_attachments(later, 1)  # past the encrypted
        assert first.attachment.id == "orphan"
        # The encrypted store still sweeps its own rows.
        assert "a2" in {
            s.attachment.id
            for s in await store.list_unattached_attachments(later, 500)
            if s.owner == owner
        }
    finally:
        if raw.flavour is not None:
            await plain.close()


def test_the_default_codec_names_an_encrypted_payload_and_only_that() -> None:
    from pydantic import ValidationError

    store = EncryptedStore(MemoryStore(codec=EnvelopeCodec()), provider())
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from chatkit_kit.encryption.cache import OwnerKeys
    from chatkit_kit.encryption.envelope import _Scope, scope

    keys = OwnerKeys("alice", {1: AESGCM(bytes(32))})
    with scope(_Scope("alice", keys={"alice": keys})):
        sealed = store.codec.encode_thread(thread("t1"))
    codec = JSONCodec()
    with pytest.raises(EncryptedPayloadError, match="thread 't1' of owner 'alice'"):
        codec.decode_thread(sealed)
    with pytest.raises(EncryptedPayloadError):
        codec.decode_threads([codec.encode_thread(thread("t0")), sealed])
    with pytest.raises(EncryptedPayloadError, match="the stored row is encrypted"):
        codec.decode_item("ckenc1:!!")  # an envelope whose header cannot be read
    with pytest.raises(ValidationError):  # anything else fails as before
        codec.decode_thread('{"id": 1}')


async def test_a_row_copied_onto_another_id_of_the_same_owner_is_refused_on_every_read(
    encrypted: tuple[EncryptedStore[Any], Raw],
) -> None:
    store, raw = encrypted
    owner = owner_name()
    await fill(store, owner)
    later = datetime.now(timezone.utc) + timedelta(days=1)
    raw.copy_row("thread", owner, "t1", "t9")
    raw.copy_row("item", owner, "i1", "i9", thread_id="t1")
    raw.copy_row("attachment", owner, "a1", "a9")  # sent in t1
    raw.copy_row("attachment", owner, "a2", "a8")  # unattached
    with pytest.raises(DecryptionError, match="copied"):
        await store.load_thread("t9", ctx(owner))
    for order in ("asc", "desc"):
        with pytest.raises(DecryptionError, match="'t9'"):
            await store.load_threads(10, None, order, ctx(owner))
        with pytest.raises(DecryptionError, match="'i9'"):
            await store.load_thread_items("t1", None, 10, order, ctx(owner))
    with pytest.raises(DecryptionError, match="copied"):
        await store.load_item("t1", "i9", ctx(owner))
    with pytest.raises(DecryptionError, match="copied"):
        await store.load_attachment("a9", ctx(owner))
    with pytest.raises(DecryptionError, match="'a9'"):
        await store.list_thread_attachments("t1", ctx(owner))
    with pytest.raises(DecryptionError, match="'a8'"):
        await store.list_unattached_attachments(later, 500)
    # The rows themselves still read; without the copies every path reads again.
    assert (await store.load_thread("t1", ctx(owner))).id == "t1"
    assert (await store.load_item("t1", "i1", ctx(owner))).id == "i1"
    await store.delete_thread("t9", ctx(owner))
    await store.delete_thread_item("t1", "i9", ctx(owner))
    await store.delete_attachment("a9", ctx(owner))
    await store.delete_attachment("a8", ctx(owner))
    assert {t.id for t in (await store.load_threads(10, None, "asc", ctx(owner))).data} == {
        "t1",
        "t2",
    }
    items = await store.load_thread_items("t1", None, 10, "asc", ctx(owner))
    assert [i.id for i in items.data] == ["i1", "i2"]
    assert [a.id for a in await store.list_thread_attachments("t1", ctx(owner))] == ["a1"]
    assert "a2" in {s.attachment.id for s in await store.list_unattached_attachments(later, 500)}
    if raw.flavour is not None:  # the clear thread column moved behind the store's back
        table = raw.table("attachments")
        raw.run(f"UPDATE {table} SET thread_id = 't2' WHERE owner = %s AND id = 'a1'", (owner,))
        with pytest.raises(DecryptionError, match="sealed in thread 't1'"):
            await store.list_thread_attachments("t2", ctx(owner))


async def test_the_memory_store_scans_rows_by_keyset_without_sorting_them_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatkit_kit.stores import memory

    store: MemoryStore[Any] = MemoryStore()
    for owner in ("carol", "alice", "bob"):
        for n in (3, 1, 2, 0, 11, 10):
            await store.save_thread(thread(f"t{n}"), ctx(owner))
            await store.save_attachment(attachment(f"a{n}"), ctx(owner))
        for n in (5, 4, 6):
            await store.add_thread_item("t1", message(f"i{n}", "t1"), ctx(owner))
    sorted_lengths: list[int] = []

    def spy(iterable: Any, **kwargs: Any) -> list[Any]:
        items = list(iterable)
        sorted_lengths.append(len(items))
        return sorted(items, **kwargs)

    monkeypatch.setattr(memory, "sorted", spy, raising=False)
    for kind, total in (("thread", 18), ("item", 9), ("attachment", 18)):
        seen: list[StoredPayload] = []
        after: StoredPayload | None = None
        while True:
            batch = await store.payload_rows(kind, after, 4)  # type: ignore[arg-type]
            if not batch:
                break
            seen.extend(batch)
            after = batch[-1]
        keys = [(r.owner, r.thread_id or "", r.id) for r in seen]
        assert len(keys) == total and keys == sorted(keys) and len(set(keys)) == total
        assert all(r.payload for r in seen)
    assert max(sorted_lengths, default=0) <= 4  # never a sort of every row per batch


class CountingCiphers(dict[int, Any]):
    """A data-key mapping that counts its lookups."""

    lookups = 0

    def get(self, key: int, default: Any = None) -> Any:
        CountingCiphers.lookups += 1
        return super().get(key, default)


async def test_a_page_looks_up_the_owners_key_once_per_version() -> None:
    store = EncryptedStore(MemoryStore(codec=EnvelopeCodec()), provider())
    owner = owner_name()
    await store.save_thread(thread("t1"), ctx(owner))
    for n in range(20):
        await store.add_thread_item("t1", message(f"i{n:02d}", "t1"), ctx(owner))
        await store.save_thread(thread(f"t{n + 2}"), ctx(owner))
    keys = await store.load_keys(owner)
    counting = CountingCiphers(keys.ciphers)
    store.cache.put(OwnerKeys(owner, counting))
    CountingCiphers.lookups = 0
    page = await store.load_thread_items("t1", None, 20, "desc", ctx(owner))
    assert len(page.data) == 20 and CountingCiphers.lookups == 1
    CountingCiphers.lookups = 0
    threads = await store.load_threads(20, None, "asc", ctx(owner))
    assert len(threads.data) == 20 and CountingCiphers.lookups == 1
