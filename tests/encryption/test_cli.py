"""`chatkit-kit encryption ...` on a SQLite database: a keyring, encrypting the rows a plain
store wrote (live migration), rotating an owner's data key and the KEK, crypto-shredding."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from chatkit.types import FileAttachment, ThreadMetadata

from chatkit_kit.attachments import METADATA_KEY, LocalBlobStorage
from chatkit_kit.cli import main
from chatkit_kit.encryption import (
    EncryptedBlobStorage,
    EncryptedStore,
    EnvelopeCodec,
    LocalKeyProvider,
)
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore
from tests.stores.encryption_support import MARKER


def stored(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


async def write_clear(url: str) -> None:
    async with SQLAlchemyStore.from_url(url) as store:
        for owner in ("alice", "bob"):
            thread = ThreadMetadata(id="t", created_at="2026-12-01", title=f"{owner} {MARKER}")
            await store.save_thread(thread, {"user_id": owner})


async def read_title(url: str, keyring: Path, owner: str) -> str | None:
    inner = SQLAlchemyStore.from_url(url, codec=EnvelopeCodec())
    async with inner:
        store = EncryptedStore(inner, LocalKeyProvider.from_file(keyring))
        return (await store.load_thread("t", {"user_id": owner})).title


async def write_blob(url: str, keyring: Path, root: Path, owner: str) -> None:
    inner = SQLAlchemyStore.from_url(url, codec=EnvelopeCodec())
    async with inner:
        store = EncryptedStore(inner, LocalKeyProvider.from_file(keyring))
        blobs = EncryptedBlobStorage(LocalBlobStorage(root), store)
        await blobs.put_for_owner(owner, "a/blob", MARKER.encode(), content_type="text/plain")
        record = {METADATA_KEY: {"backend": "direct", "key": "a/blob", "size": len(MARKER)}}
        attachment = FileAttachment(id="atc", name="a.txt", mime_type="text/plain", metadata=record)
        await store.save_attachment(attachment, {"user_id": owner})


async def read_blob(url: str, keyring: Path, root: Path) -> bytes:
    inner = SQLAlchemyStore.from_url(url, codec=EnvelopeCodec())
    async with inner:
        store = EncryptedStore(inner, LocalKeyProvider.from_file(keyring))
        return await EncryptedBlobStorage(LocalBlobStorage(root), store).get("a/blob")


def test_the_encryption_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db, keyring, rotated = tmp_path / "app.db", tmp_path / "k1.json", tmp_path / "k2.json"
    url = f"sqlite:///{db}"
    assert main(["encryption", "new-keyring", "k1"]) == 0
    keyring.write_text(capsys.readouterr().out)
    assert json.loads(keyring.read_text())["current"] == "k1"
    assert main(["migrate", url]) == 0
    asyncio.run(write_clear(url))
    assert MARKER in repr(stored(db, "SELECT payload FROM chatkit_threads"))

    assert main(["encryption", "encrypt-existing", url, "--keyring", str(keyring)]) == 0
    assert "2 rewritten, 0 remaining" in capsys.readouterr().out
    assert MARKER not in repr(stored(db, "SELECT payload FROM chatkit_threads"))
    assert asyncio.run(read_title(url, keyring, "alice")) == f"alice {MARKER}"

    blobs_dir = tmp_path / "blobs"
    asyncio.run(write_blob(url, keyring, blobs_dir, "alice"))
    monkeypatch.setenv("CHATKIT_KIT_KEYRING", keyring.read_text())  # the default source
    args = ["encryption", "rotate-data-key", url, "--owner", "alice", "--retire"]
    assert main([*args, "--blobs-dir", str(blobs_dir)]) == 0
    assert "2 rewritten, 0 remaining, 0 data keys rewrapped, 1 blobs rewrapped" in (
        capsys.readouterr().out
    )
    versions = stored(db, "SELECT version FROM chatkit_data_keys WHERE owner = 'alice'")
    assert versions == [(2,)]
    assert asyncio.run(read_blob(url, keyring, blobs_dir)) == MARKER.encode()

    assert main(["encryption", "new-keyring", "k2", "--from", str(keyring)]) == 0
    rotated.write_text(capsys.readouterr().out)
    assert main(["encryption", "rotate-kek", url, "--keyring", str(rotated)]) == 0
    assert "2 data keys rewrapped" in capsys.readouterr().out
    assert {k for (k,) in stored(db, "SELECT kek_id FROM chatkit_data_keys")} == {"k2"}
    assert asyncio.run(read_title(url, rotated, "bob")) == f"bob {MARKER}"

    # The plain erase-owner refuses an owner with encrypted data (it would leave the data key),
    # touching nothing; the encryption command shreds the key first.
    assert main(["erase-owner", url, "bob"]) == 2
    assert "chatkit-kit encryption erase-owner" in capsys.readouterr().err
    assert stored(db, "SELECT count(*) FROM chatkit_threads WHERE owner = 'bob'") == [(1,)]
    args = ["encryption", "erase-owner", url, "--owner", "bob", "--keyring", str(rotated)]
    assert main(args) == 0
    assert "erased 1 threads" in capsys.readouterr().out
    assert stored(db, "SELECT owner FROM chatkit_data_keys") == [("alice",)]


def test_a_missing_keyring_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATKIT_KIT_KEYRING", raising=False)
    assert main(["encryption", "rotate-kek", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    assert "no usable keyring" in capsys.readouterr().err
