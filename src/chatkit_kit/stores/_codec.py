"""JSON text codec for the ChatKit models a store keeps (see chatkit-contract.md 1.10, 1.11).

Payloads are stored as JSON text and parsed straight back into the pydantic models, so
`created_at` returns exactly as saved (naive stays naive, aware keeps its offset) and U+0000 in
text survives as the JSON escape `\\u0000`. A `Thread` passed to `save_thread` is stored as its
`ThreadMetadata` fields only.

Widgets built from `.widget` templates are `DynamicWidgetRoot`s; validating them back through
the `ThreadItem` union would turn them into strict `Card`s and drop unknown props, so such items
are written with a marker key first and read back with the widget typed as `DynamicWidgetRoot`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from chatkit.types import Attachment, ThreadItem, ThreadMetadata, WidgetItem
from chatkit.widgets import DynamicWidgetComponent, DynamicWidgetRoot
from pydantic import TypeAdapter

_THREAD = TypeAdapter(ThreadMetadata)
_THREADS = TypeAdapter(list[ThreadMetadata])
_ITEM: TypeAdapter[Any] = TypeAdapter(ThreadItem)
_ITEMS: TypeAdapter[list[Any]] = TypeAdapter(list[ThreadItem])
_ATTACHMENT: TypeAdapter[Any] = TypeAdapter(Attachment)

_DYNAMIC_WIDGET_MARK = '{"__chatkit_kit_dynamic_widget__":true,'
# Compact JSON has unescaped quotes only around real keys and values, so this finds widget items
# (and, harmlessly, JSON content that merely contains such an object).
_WIDGET_TYPE = '"type":"widget"'


with warnings.catch_warnings():
    # Subclassing a model whose fields name the deprecated strict widget classes warns.
    warnings.simplefilter("ignore", DeprecationWarning)

    class _DynamicWidgetItem(WidgetItem):
        widget: DynamicWidgetRoot


_DYNAMIC_WIDGET_ITEM = TypeAdapter(_DynamicWidgetItem)


def encode_thread(thread: ThreadMetadata) -> str:
    """Serialize the ThreadMetadata fields of `thread` (a `Thread`'s `items` are dropped)."""
    return _THREAD.dump_json(thread).decode()


def decode_thread(text: str | bytes) -> ThreadMetadata:
    """Parse a payload written by `encode_thread`."""
    return _THREAD.validate_json(text)


def decode_threads(texts: Sequence[str | bytes]) -> list[ThreadMetadata]:
    """Parse a page of `encode_thread` payloads in one pass."""
    return _THREADS.validate_json(_json_array(texts))


def _json_array(texts: Sequence[str | bytes]) -> str:
    return "[" + ",".join(t.decode() if isinstance(t, bytes) else t for t in texts) + "]"


def encode_item(item: ThreadItem) -> str:
    """Serialize a thread item, marking template-built widgets."""
    text: str = _ITEM.dump_json(item).decode()
    if isinstance(item, WidgetItem) and isinstance(item.widget, DynamicWidgetComponent):
        return _DYNAMIC_WIDGET_MARK + text[1:]
    return text


def decode_item(text: str | bytes) -> ThreadItem:
    """Parse a payload written by `encode_item`."""
    if isinstance(text, bytes):
        text = text.decode()
    if _WIDGET_TYPE not in text:
        item: ThreadItem = _ITEM.validate_json(text)
        return item
    with warnings.catch_warnings():
        # Upstream deprecates the named widget classes; reading stored ones must still work.
        warnings.simplefilter("ignore", DeprecationWarning)
        if text.startswith(_DYNAMIC_WIDGET_MARK):
            parsed = _DYNAMIC_WIDGET_ITEM.validate_json(text)
            fields = {name: getattr(parsed, name) for name in WidgetItem.model_fields}
            return WidgetItem.model_construct(_fields_set=parsed.model_fields_set, **fields)
        widget_item: ThreadItem = _ITEM.validate_json(text)
        return widget_item


def decode_items(texts: Sequence[str | bytes]) -> list[ThreadItem]:
    """Parse a page of `encode_item` payloads; pages without widgets go in one pass."""
    strings = [t.decode() if isinstance(t, bytes) else t for t in texts]
    if any(_WIDGET_TYPE in t for t in strings):
        return [decode_item(t) for t in strings]
    items: list[ThreadItem] = _ITEMS.validate_json(_json_array(strings))
    return items


def encode_attachment(attachment: Attachment) -> str:
    """Serialize attachment metadata, integration `metadata` included."""
    return _ATTACHMENT.dump_json(attachment).decode()


def decode_attachment(text: str | bytes) -> Attachment:
    """Parse a payload written by `encode_attachment`."""
    attachment: Attachment = _ATTACHMENT.validate_json(text)
    return attachment
