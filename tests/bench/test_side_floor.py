"""bench/_side_app.py: the side-by-side bench's floor store answers like a store, at a page's cost.

The floor's dict store once answered `threads.list` by sorting every thread of every user, so
it slowed down as a run went on and flattered every ratio to it. It now reads one page of the
caller's threads, newest first or oldest first, after a cursor.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from chatkit.types import ThreadMetadata

from . import ROOT


@pytest.fixture(scope="module")
def side_app() -> ModuleType:
    # bench/_side_app.py imports bench/_streaming.py by name, as uvicorn's --app-dir allows.
    _load(ROOT / "bench" / "_streaming.py", "_streaming")
    return _load(ROOT / "bench" / "_side_app.py", "_side_app")


def _load(path: Path, name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # (dataclasses look their module up there)
    spec.loader.exec_module(module)
    return module


async def _ids(
    store: Any, user: Any, limit: int, after: str | None, order: str
) -> tuple[list[str], bool]:
    page = await store.load_threads(limit, after, order, user)
    return [thread.id for thread in page.data], page.has_more


async def test_threads_list_pages_the_callers_threads(side_app: ModuleType) -> None:
    store = side_app.DictStore()
    alice, bob = side_app.Ctx("alice"), side_app.Ctx("bob")
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    for n in range(5):
        await store.save_thread(
            ThreadMetadata(id=f"a{n}", created_at=start + timedelta(seconds=n)), alice
        )
        await store.save_thread(
            ThreadMetadata(id=f"b{n}", created_at=start + timedelta(seconds=n)), bob
        )
    # Saving a thread again (a new title) keeps its place.
    await store.save_thread(
        ThreadMetadata(id="a1", title="renamed", created_at=start + timedelta(seconds=1)), alice
    )

    assert await _ids(store, alice, 2, None, "desc") == (["a4", "a3"], True)
    assert await _ids(store, alice, 2, "a3", "desc") == (["a2", "a1"], True)
    assert await _ids(store, alice, 10, "a1", "desc") == (["a0"], False)
    assert await _ids(store, alice, 3, None, "asc") == (["a0", "a1", "a2"], True)
    assert await _ids(store, alice, 3, "a2", "asc") == (["a3", "a4"], False)
    assert await _ids(store, bob, 10, None, "desc") == (["b4", "b3", "b2", "b1", "b0"], False)
    assert (await store.load_threads(10, None, "desc", alice)).data[3].title == "renamed"

    await store.delete_thread("a4", alice)
    assert await _ids(store, alice, 10, None, "desc") == (["a3", "a2", "a1", "a0"], False)
    assert await _ids(store, side_app.Ctx("carol"), 10, None, "desc") == ([], False)
