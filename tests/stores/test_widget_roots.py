"""Every store gives a widget item back with the root class it was saved with.

Upstream's `WidgetTemplate.build_basic` returns a `BasicRoot`, `build` a `DynamicWidgetRoot`,
and the (deprecated) named classes give `Card` and `ListView`; all four must come back equal
(`item == original`, which compares classes at every depth), from every way of reading.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import Any

import pytest
from chatkit.types import ThreadMetadata, WidgetItem
from chatkit.widgets import BasicRoot, DynamicWidgetRoot, WidgetRoot, WidgetTemplate

from chatkit_kit.stores import MemoryStore, _codec

ALICE = {"user_id": "alice"}
T0 = datetime(2026, 1, 1, 12, 0, 0)

_TEMPLATE = WidgetTemplate(
    {
        "version": "1.0",
        "name": "greeting",
        "template": (
            '{"type": {{ root | tojson }}, "children": [{"type": "Text", "value": {{ text | '
            'tojson }}, "streaming": false, "customProp": {"nested": [1, 2]}}], "padding": 3}'
        ),
    }
)


def _named_roots() -> dict[str, WidgetRoot]:
    from chatkit.widgets import Button, Card, ListView, ListViewItem, Row, Text

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # upstream deprecates these classes
        return {
            "Card": Card(
                size="sm",
                children=[Text(value="hi"), Row(children=[Button(label="Go")])],
            ),
            "ListView": ListView(
                children=[ListViewItem(children=[Text(value="one")]), ListViewItem(children=[])]
            ),
        }


def _basic_root() -> BasicRoot:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # build_basic is deprecated upstream
        return _TEMPLATE.build_basic({"root": "Basic", "text": "basic"})


def roots() -> dict[str, WidgetRoot]:
    """One widget of every root class, built the ways upstream builds them."""
    return {
        "BasicRoot": _basic_root(),
        "DynamicWidgetRoot(Card)": _TEMPLATE.build({"root": "Card", "text": "card"}),
        "DynamicWidgetRoot(ListView)": DynamicWidgetRoot.model_validate(
            {"type": "ListView", "children": [{"type": "ListViewItem", "children": []}]}
        ),
        "DynamicWidgetRoot(Basic)": _TEMPLATE.build({"root": "Basic", "text": "dyn"}),
        **_named_roots(),
    }


def widget_item(item_id: str, widget: WidgetRoot) -> WidgetItem:
    return WidgetItem(
        id=item_id, thread_id="thr", created_at=T0, widget=widget, copy_text="copy me"
    )


def test_the_roots_have_the_classes_the_test_is_about() -> None:
    classes = {type(widget).__name__ for widget in roots().values()}
    assert classes == {"BasicRoot", "DynamicWidgetRoot", "Card", "ListView"}


@pytest.mark.parametrize("kind", sorted(roots()))
def test_codec_keeps_the_root_class(kind: str) -> None:
    item = widget_item("w", roots()[kind])
    payload = _codec.encode_item(item)
    assert _codec.decode_item(payload) == item
    assert _codec.decode_items([payload, payload.encode()]) == [item, item]
    assert type(_codec.decode_item(payload).widget) is type(item.widget)  # type: ignore[union-attr]


def test_payloads_from_before_root_classes_read_as_dynamic_roots() -> None:
    widget = _TEMPLATE.build({"root": "Card", "text": "old"})
    item = widget_item("w", widget)
    text = WidgetItem.model_dump_json(item)
    legacy = '{"__chatkit_kit_dynamic_widget__":true,' + text[1:]
    assert _codec.decode_item(legacy) == item


async def test_memory_store_keeps_every_root_class() -> None:
    await _check_store_keeps_every_root_class(MemoryStore())


async def test_sql_stores_keep_every_root_class(sql_store: Any) -> None:
    """SQLite, SQLAlchemy on asyncpg and on psycopg, and AsyncpgStore."""
    await _check_store_keeps_every_root_class(sql_store)


async def _check_store_keeps_every_root_class(store: Any) -> None:
    await store.save_thread(ThreadMetadata(id="thr", created_at=T0), ALICE)
    items = {f"w{n}": widget_item(f"w{n}", widget) for n, widget in enumerate(roots().values())}
    for item in items.values():
        await store.add_thread_item("thr", item, ALICE)

    for item_id, item in items.items():
        loaded = await store.load_item("thr", item_id, ALICE)
        assert loaded == item
        assert type(loaded.widget) is type(item.widget)
    page = await store.load_thread_items("thr", None, 20, "asc", ALICE)
    assert page.data == list(items.values())

    # save_item (an update) keeps the class too
    replaced = widget_item("w0", _TEMPLATE.build({"root": "Card", "text": "replaced"}))
    await store.save_item("thr", replaced, ALICE)
    assert await store.load_item("thr", "w0", ALICE) == replaced
    thread_page = await store.load_thread_items("thr", None, 20, "desc", ALICE)
    assert thread_page.data[-1] == replaced
