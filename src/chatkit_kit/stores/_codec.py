"""JSON text codec for the ChatKit models a store keeps, and the `StoreCodec` seam.

Every store takes `codec=`, a `StoreCodec`; the default `JSONCodec` is the JSON below.

Payloads are stored as JSON text and parsed straight back into the pydantic models, so
`created_at` returns exactly as saved (naive stays naive, aware keeps its offset) and U+0000 in
text survives as the JSON escape `\\u0000`. A `Thread` passed to `save_thread` is stored as its
`ThreadMetadata` fields only.

Widget items are written with the class of their root first (`BasicRoot`, `Card`, `ListView` or
`DynamicWidgetRoot`) and read back as that class: validating through the `ThreadItem` union
would turn template-built `DynamicWidgetRoot`s into strict `Card`s that drop unknown props.
Payloads written before root classes were recorded carry a dynamic-widget marker instead and
still read back as `DynamicWidgetRoot`.
"""

from __future__ import annotations

import binascii
import math
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from chatkit.types import Attachment, ThreadItem, ThreadMetadata, WidgetItem
from chatkit.widgets import BasicRoot, Card, DynamicWidgetRoot, ListView
from pydantic import BaseModel, TypeAdapter, ValidationError, create_model

from .._http import UnstorableValueError
from ..errors import DecryptionError, EncryptedPayloadError

_THREAD = TypeAdapter(ThreadMetadata)
_THREADS = TypeAdapter(list[ThreadMetadata])
_ITEM: TypeAdapter[Any] = TypeAdapter(ThreadItem)
_ITEMS: TypeAdapter[list[Any]] = TypeAdapter(list[ThreadItem])
_ATTACHMENT: TypeAdapter[Any] = TypeAdapter(Attachment)

_ROOT_MARK = '{"__chatkit_kit_widget_root__":"'
_LEGACY_DYNAMIC_MARK = '{"__chatkit_kit_dynamic_widget__":true,'
# Compact JSON has unescaped quotes only around real keys and values, so this finds widget items
# (and, harmlessly, JSON content that merely contains such an object).
_WIDGET_TYPE = '"type":"widget"'


def _root_item_adapter(root: type[Any]) -> TypeAdapter[Any]:
    """A `WidgetItem` whose `widget` validates as exactly `root`."""
    with warnings.catch_warnings():
        # Subclassing a model whose fields name the deprecated strict widget classes warns.
        warnings.simplefilter("ignore", DeprecationWarning)
        item_class = create_model(f"_{root.__name__}Item", __base__=WidgetItem, widget=(root, ...))
    return TypeAdapter(item_class)


_ROOT_CLASSES: tuple[type[Any], ...] = (BasicRoot, DynamicWidgetRoot, Card, ListView)
_ROOT_ITEMS: dict[str, TypeAdapter[Any]] = {
    root.__name__: _root_item_adapter(root) for root in _ROOT_CLASSES
}


def _root_name(widget: object) -> str | None:
    for root in _ROOT_CLASSES:
        if isinstance(widget, root):
            return root.__name__
    return None


_MINUTE = timedelta(minutes=1)

ENVELOPE_PREFIX = "ckenc1:"
"""How a payload sealed by `chatkit_kit.encryption.EnvelopeCodec` starts."""
_ENVELOPE_KINDS = {0x74: "thread", 0x69: "item", 0x61: "attachment"}


def _envelope_row(text: str) -> tuple[str | None, str | None, str | None]:
    """(kind, owner, row id) from an envelope's clear header; Nones where it cannot be read."""
    try:
        raw = binascii.a2b_base64(text[len(ENVELOPE_PREFIX) : len(ENVELOPE_PREFIX) + 4000])
    except (binascii.Error, ValueError):
        raw = b""
    kind = _ENVELOPE_KINDS.get(raw[0]) if raw else None
    fields: list[str] = []
    at = 5
    for _ in range(3):
        length = int.from_bytes(raw[at : at + 2], "big")
        field = raw[at + 2 : at + 2 + length]
        if len(raw) < at + 2 or len(field) != length:
            return kind, None, None
        fields.append(field.decode(errors="replace"))
        at += 2 + length
    return kind, fields[0], fields[2]


class HasId(Protocol):
    """A stored model: it has the id of its row."""

    @property
    def id(self) -> str: ...


def verify_row_ids(codec: object) -> bool:
    """Whether the stores compare each decoded model's id with its row's id column on the
    paths that read many rows (a codec that binds payloads to their rows, `EnvelopeCodec`,
    sets `verify_row_ids = True`; the stores' single-row reads are checked by its store)."""
    return bool(getattr(codec, "verify_row_ids", False))


def check_row_ids(row_ids: Sequence[str], models: Sequence[HasId], kind: str) -> None:
    """`DecryptionError` unless every model has the id of the row it was read from: a sealed
    payload copied onto another row of the same owner decrypts (it is authentic), but is not
    served as that row."""
    for row_id, model in zip(row_ids, models, strict=True):
        if model.id != row_id:
            raise DecryptionError(
                f"the stored {kind} row {row_id!r} holds the sealed {kind} {model.id!r} (copied "
                "between rows): it is not returned",
                row_id=row_id,
            )


def refuse_envelopes(texts: Sequence[str | bytes], error: Exception) -> None:
    """Raise `EncryptedPayloadError` for the first encrypted payload of `texts` (called when
    parsing them failed with `error`, so it costs nothing on the path that succeeds)."""
    for text in texts:
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        if not text.startswith(ENVELOPE_PREFIX):
            continue
        kind, owner, row_id = _envelope_row(text)
        what = f"{kind or 'row'} {row_id!r} of owner {owner!r}" if row_id else "row"
        raise EncryptedPayloadError(
            f"the stored {what} is encrypted (written by chatkit_kit.encryption.EncryptedStore) "
            "and this store has no keys: build it with codec=EnvelopeCodec() and wrap it in "
            "EncryptedStore(store, provider) to read it",
            owner=owner,
            row_id=row_id,
            kind=kind,
        ) from error


def refuse_inexact(value: Any, where: str) -> None:
    """Raise ValueError for what JSON cannot keep exactly: a float NaN or +-inf (JSON has no
    such number; it would come back as None) and a datetime whose UTC offset has seconds
    (ISO 8601 as pydantic writes it keeps only minutes: another instant would come back)."""
    if isinstance(value, (str, int, bool)) or value is None:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnstorableValueError(
                f"{where} is {value!r}, which JSON cannot store (it would read back as None); "
                "store None or a string instead"
            )
    elif isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is not None and offset % _MINUTE:
            raise UnstorableValueError(
                f"{where} has the UTC offset {offset}, with seconds, which the stored ISO 8601 "
                "text cannot keep (it would read back as another instant); convert it to UTC "
                "first, e.g. value.astimezone(timezone.utc)"
            )
    elif isinstance(value, dict):
        for key, entry in value.items():
            refuse_inexact(entry, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, entry in enumerate(value):
            refuse_inexact(entry, f"{where}[{index}]")
    elif isinstance(value, BaseModel):
        for name, entry in vars(value).items():  # (no deprecated-property warnings)
            refuse_inexact(entry, f"{where}.{name}")
        if value.model_extra:
            refuse_inexact(value.model_extra, where)


def encode_thread(thread: ThreadMetadata) -> str:
    """Serialize the ThreadMetadata fields of `thread` (a `Thread`'s `items` are dropped).

    Raises ValueError for a value JSON cannot keep exactly (`refuse_inexact`).
    """
    for name in ThreadMetadata.model_fields:
        refuse_inexact(vars(thread).get(name), f"thread.{name}")
    return _THREAD.dump_json(thread).decode()


def decode_thread(text: str | bytes) -> ThreadMetadata:
    """Parse a payload written by `encode_thread`."""
    try:
        return _THREAD.validate_json(text)
    except ValidationError as error:
        refuse_envelopes((text,), error)
        raise


def decode_threads(texts: Sequence[str | bytes]) -> list[ThreadMetadata]:
    """Parse a page of `encode_thread` payloads in one pass."""
    try:
        return _THREADS.validate_json(_json_array(texts))
    except ValidationError as error:
        refuse_envelopes(texts, error)
        raise


def _json_array(texts: Sequence[str | bytes]) -> str:
    return "[" + ",".join(t.decode() if isinstance(t, bytes) else t for t in texts) + "]"


def encode_item(item: ThreadItem) -> str:
    """Serialize a thread item; a widget item is prefixed with its root's class name.

    Raises ValueError for a value JSON cannot keep exactly (`refuse_inexact`).
    """
    refuse_inexact(item, "item")
    text: str = _ITEM.dump_json(item).decode()
    if isinstance(item, WidgetItem):
        root = _root_name(item.widget)
        if root is not None:
            return f'{_ROOT_MARK}{root}",' + text[1:]
    return text


def decode_item(text: str | bytes) -> ThreadItem:
    """Parse a payload written by `encode_item`."""
    if isinstance(text, bytes):
        text = text.decode()
    if _WIDGET_TYPE not in text:
        try:
            item: ThreadItem = _ITEM.validate_json(text)
        except ValidationError as error:
            refuse_envelopes((text,), error)
            raise
        return item
    with warnings.catch_warnings():
        # Upstream deprecates the named widget classes; reading stored ones must still work.
        warnings.simplefilter("ignore", DeprecationWarning)
        adapter = None
        if text.startswith(_ROOT_MARK):
            root = text[len(_ROOT_MARK) : text.find('"', len(_ROOT_MARK))]
            adapter = _ROOT_ITEMS.get(root)
        elif text.startswith(_LEGACY_DYNAMIC_MARK):
            adapter = _ROOT_ITEMS[DynamicWidgetRoot.__name__]
        if adapter is None:
            widget_item: ThreadItem = _ITEM.validate_json(text)
            return widget_item
        parsed = adapter.validate_json(text)
        fields = {name: getattr(parsed, name) for name in WidgetItem.model_fields}
        return WidgetItem.model_construct(_fields_set=parsed.model_fields_set, **fields)


def decode_items(texts: Sequence[str | bytes]) -> list[ThreadItem]:
    """Parse a page of `encode_item` payloads; pages without widgets go in one pass."""
    strings = [t.decode() if isinstance(t, bytes) else t for t in texts]
    if any(_WIDGET_TYPE in t for t in strings):
        return [decode_item(t) for t in strings]
    try:
        items: list[ThreadItem] = _ITEMS.validate_json(_json_array(strings))
    except ValidationError as error:
        refuse_envelopes(strings, error)
        raise
    return items


def encode_attachment(attachment: Attachment) -> str:
    """Serialize attachment metadata, integration `metadata` included (ValueError for a value
    JSON cannot keep exactly, see `refuse_inexact`)."""
    refuse_inexact(attachment, "attachment")
    return _ATTACHMENT.dump_json(attachment).decode()


def decode_attachment(text: str | bytes) -> Attachment:
    """Parse a payload written by `encode_attachment`."""
    try:
        attachment: Attachment = _ATTACHMENT.validate_json(text)
    except ValidationError as error:
        refuse_envelopes((text,), error)
        raise
    return attachment


@runtime_checkable
class StoreCodec(Protocol):
    """Turns the ChatKit models a store keeps into stored text and back (`codec=` of a store).

    The default, `JSONCodec`, writes the JSON described above. A codec of your own (encryption,
    compression, a wrapper adding a version tag) must read back exactly what it wrote, as the
    same model: the conformance suite checks it through the store. SQL columns are text, so a
    binary format must be turned into text (e.g. base64) before it is returned.
    """

    def encode_thread(self, thread: ThreadMetadata) -> str: ...

    def decode_thread(self, payload: str | bytes) -> ThreadMetadata: ...

    def decode_threads(self, payloads: Sequence[str | bytes]) -> list[ThreadMetadata]:
        """A page of payloads (a codec may parse them in one pass)."""
        ...

    def encode_item(self, item: ThreadItem) -> str: ...

    def decode_item(self, payload: str | bytes) -> ThreadItem: ...

    def decode_items(self, payloads: Sequence[str | bytes]) -> list[ThreadItem]: ...

    def encode_attachment(self, attachment: Attachment) -> str: ...

    def decode_attachment(self, payload: str | bytes) -> Attachment: ...


class JSONCodec:
    """The default codec: compact JSON text (see this module), read back as written."""

    __slots__ = ()

    encode_thread = staticmethod(encode_thread)
    decode_thread = staticmethod(decode_thread)
    decode_threads = staticmethod(decode_threads)
    encode_item = staticmethod(encode_item)
    decode_item = staticmethod(decode_item)
    decode_items = staticmethod(decode_items)
    encode_attachment = staticmethod(encode_attachment)
    decode_attachment = staticmethod(decode_attachment)

    def __repr__(self) -> str:
        return "JSONCodec()"


JSON_CODEC: StoreCodec = JSONCodec()


def check_codec(codec: StoreCodec | None) -> StoreCodec:
    """`codec`, or the default JSON codec for None; TypeError for anything else."""
    if codec is None:
        return JSON_CODEC
    if isinstance(codec, type) or not isinstance(codec, StoreCodec):
        raise TypeError(
            f"codec must implement chatkit_kit.stores.StoreCodec (encode_thread, decode_thread, "
            f"...), got {codec!r}"
            + (" (a class: pass an instance)" if isinstance(codec, type) else "")
        )
    return codec
