"""Values JSON cannot keep exactly are refused at write time, on every store: a UTC offset with
seconds (historic Europe/Amsterdam, +00:19:32) and NaN or +-inf in free-form fields. Before,
they came back as another instant and as None."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from chatkit.store import NotFoundError
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    FileAttachment,
    ThreadMetadata,
)

from chatkit_kit.stores import MemoryStore
from tests.fixtures.context import Ctx

AMSTERDAM_1930 = timezone(timedelta(minutes=19, seconds=32))
CTX = Ctx("exact")


async def test_memory_store_refuses_inexact_values() -> None:
    await check_inexact_values_are_refused(MemoryStore())


async def test_sql_stores_refuse_inexact_values(sql_store: Any) -> None:
    await check_inexact_values_are_refused(sql_store)


async def check_inexact_values_are_refused(store: Any) -> None:
    await store.save_thread(ThreadMetadata(id="ok", created_at=datetime(2026, 1, 1)), CTX)
    bad_threads = [
        ThreadMetadata(id="t1", created_at=datetime(1930, 5, 1, tzinfo=AMSTERDAM_1930)),
        ThreadMetadata(id="t2", created_at=datetime(2026, 1, 1), metadata={"score": math.nan}),
        ThreadMetadata(id="t3", created_at=datetime(2026, 1, 1), metadata={"x": [math.inf]}),
    ]
    for thread in bad_threads:
        with pytest.raises(ValueError, match=r"JSON cannot store|offset"):
            await store.save_thread(thread, CTX)
        with pytest.raises(NotFoundError):
            await store.load_thread(thread.id, CTX)  # nothing stored
    item = AssistantMessageItem(
        id="i1",
        thread_id="ok",
        created_at=datetime(1930, 5, 1, tzinfo=AMSTERDAM_1930),
        content=[AssistantMessageContent(text="x")],
    )
    with pytest.raises(ValueError, match="offset"):
        await store.add_thread_item("ok", item, CTX)
    attachment = FileAttachment(
        id="a1", name="a.txt", mime_type="text/plain", metadata={"ratio": -math.inf}
    )
    with pytest.raises(ValueError, match="JSON cannot store"):
        await store.save_attachment(attachment, CTX)
    # Exact values still round-trip: a whole-minute offset, finite floats.
    kept = ThreadMetadata(
        id="t4",
        created_at=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=45))),
        metadata={"score": 0.1},
    )
    await store.save_thread(kept, CTX)
    assert await store.load_thread("t4", CTX) == kept
