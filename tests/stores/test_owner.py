from __future__ import annotations

from datetime import datetime

import pytest
from chatkit.store import NotFoundError
from chatkit.types import ThreadMetadata

from chatkit_kit.stores import MemoryStore, default_owner
from tests.fixtures.context import Ctx


def test_default_owner_reads_attribute_and_mapping_key() -> None:
    assert default_owner(Ctx("u1")) == "u1"
    assert default_owner({"user_id": "u2"}) == "u2"


def test_default_owner_error_says_how_to_configure_owner() -> None:
    with pytest.raises(TypeError, match=r"owner=lambda ctx"):
        default_owner(object())


async def test_custom_owner_resolver_scopes_rows() -> None:
    store: MemoryStore[dict[str, str]] = MemoryStore(owner=lambda ctx: ctx["tenant"])
    thread = ThreadMetadata(id="thr_1", created_at=datetime.now())
    await store.save_thread(thread, {"tenant": "a"})
    assert await store.load_thread("thr_1", {"tenant": "a"}) == thread
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_1", {"tenant": "b"})


async def test_owner_resolver_must_return_nonempty_str() -> None:
    with pytest.raises(TypeError, match="expected str"):
        await MemoryStore(owner=lambda ctx: 3).load_threads(  # type: ignore[arg-type,return-value]
            10, None, "desc", None
        )
    with pytest.raises(ValueError, match="empty owner"):
        await MemoryStore(owner=lambda ctx: "").load_threads(10, None, "desc", None)
