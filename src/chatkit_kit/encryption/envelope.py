"""`EnvelopeCodec`: payloads sealed with AES-256-GCM under their owner's data key.

A payload is the default JSON (`chatkit_kit.stores.JSONCodec`) encrypted and stored as text:

    ckenc1:<base64 of header | nonce | ciphertext | tag>
    header = kind (1 byte) | data-key version (4) | owner | thread id | row id (each 2-byte
             length + UTF-8)

The associated data is the header with the owner the row is read for, so a payload only opens
as the row it was written as: copied to another owner (another data key, another owner in the
associated data), another thread, or another id, it raises `DecryptionError`, never returns
garbage. Ids, owners and timestamps stay in their clear columns; the header repeats the ids so
rows can be checked without the columns (the codec sees only payloads).

The codec is sync, like every `StoreCodec`; the keys come from the `EncryptedStore` call around
it (a context variable holding the owner's unwrapped data keys), so it is used only inside an
`EncryptedStore`. With `accept_clear=True` it also reads clear JSON payloads written before the
store was encrypted (live migration); `chatkit-kit encrypt-existing` then encrypts them.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from chatkit.types import Attachment, ThreadItem, ThreadMetadata
from pydantic import TypeAdapter

from ..errors import DataKeyDestroyedError, DecryptionError
from ..stores import JSONCodec, PayloadKind
from . import _aead
from .cache import OwnerKeys

PREFIX = "ckenc1:"
_PREFIX_LENGTH = len(PREFIX)
_AAD_TAG = b"chatkit-kit/payload/1\x00"
_KIND_CODES: Mapping[PayloadKind, int] = {"thread": 0x74, "item": 0x69, "attachment": 0x61}
_KINDS = {code: kind for kind, code in _KIND_CODES.items()}
_FIXED = struct.Struct(">BI")
_LENGTH = struct.Struct(">H")
_JSON = JSONCodec()
_THREAD_PAGE = TypeAdapter(list[ThreadMetadata])
_ITEM_PAGE: TypeAdapter[list[ThreadItem]] = TypeAdapter(list[ThreadItem])
_WIDGET_TYPE = b'"type":"widget"'
"""As the default codec writes a widget item (compact JSON): such pages go through it."""


class _KeyNeeded(Exception):
    """The scope lacks `owner`'s data key `version`: the store loads it and runs the call again."""

    def __init__(self, owner: str, version: int | None) -> None:
        super().__init__(owner, version)
        self.owner = owner
        self.version = version


class _Scope:
    """What one `EncryptedStore` call lets the codec use.

    `owner`: the owner every row belongs to (None for a sweep across owners: each envelope's
    owner). `thread_id`: the thread item rows belong to, where the call names one.
    """

    __slots__ = ("_owner_bytes", "keys", "owner", "shredded", "thread_bytes", "thread_id")

    def __init__(
        self,
        owner: str | None,
        keys: dict[str, OwnerKeys] | None = None,
        thread_id: str | None = None,
        shredded: frozenset[str] = frozenset(),
    ) -> None:
        self.owner = owner
        self.keys: dict[str, OwnerKeys] = {} if keys is None else keys
        self.thread_id = thread_id
        self.shredded = shredded
        self._owner_bytes = None if owner is None else owner.encode()
        self.thread_bytes = None if thread_id is None else thread_id.encode()

    def owner_bytes(self, owner: str) -> bytes:
        if owner == self.owner and self._owner_bytes is not None:
            return self._owner_bytes
        return owner.encode()


_SCOPE: ContextVar[_Scope | None] = ContextVar("chatkit_kit_encryption_scope", default=None)


@contextmanager
def scope(active: _Scope) -> Iterator[_Scope]:
    token = _SCOPE.set(active)
    try:
        yield active
    finally:
        _SCOPE.reset(token)


@dataclass(frozen=True)
class Header:
    """The clear part of an envelope."""

    kind: PayloadKind
    version: int
    owner: str
    thread_id: str
    row_id: str

    def pack(self, owner: str | None = None) -> bytes:
        parts = [_FIXED.pack(_KIND_CODES[self.kind], self.version)]
        for text in (self.owner if owner is None else owner, self.thread_id, self.row_id):
            raw = text.encode()
            parts.append(_LENGTH.pack(len(raw)) + raw)
        return b"".join(parts)


def is_envelope(payload: str | bytes) -> bool:
    if isinstance(payload, bytes):
        return payload.startswith(PREFIX.encode())
    return payload.startswith(PREFIX)


def _split(payload: str | bytes) -> tuple[Header, bytes, bytes]:
    """The header, its packed bytes and the sealed part of an envelope (DecryptionError if
    malformed; base64 is not validated strictly: the tag authenticates every byte anyway)."""
    text = payload if isinstance(payload, bytes) else payload.encode("ascii", "replace")
    try:
        raw = binascii.a2b_base64(text[len(PREFIX) :])
        code, version = _FIXED.unpack_from(raw, 0)
        offset = _FIXED.size
        fields: list[str] = []
        for _ in range(3):
            (length,) = _LENGTH.unpack_from(raw, offset)
            offset += _LENGTH.size
            if offset + length > len(raw):
                raise ValueError("truncated")
            fields.append(raw[offset : offset + length].decode())
            offset += length
        kind = _KINDS[code]
    except (binascii.Error, struct.error, ValueError, KeyError, UnicodeDecodeError):
        raise DecryptionError("a stored payload is not a valid chatkit-kit envelope") from None
    header = Header(kind, version, fields[0], fields[1], fields[2])
    return header, raw[:offset], raw[offset:]


def header_of(payload: str | bytes) -> Header | None:
    """The header of an envelope, None for a clear payload (DecryptionError if malformed)."""
    return _split(payload)[0] if is_envelope(payload) else None


def _active() -> _Scope:
    active = _SCOPE.get()
    if active is None:
        raise RuntimeError(
            "EnvelopeCodec works only inside an EncryptedStore: wrap the store, e.g. "
            "EncryptedStore(MemoryStore(codec=EnvelopeCodec()), provider)"
        )
    return active


class EnvelopeCodec:
    """A `StoreCodec` that seals every payload under its owner's data key (see this module).

    Pass it as `codec=` of any chatkit-kit store and wrap that store in `EncryptedStore`.
    `accept_clear=True` also reads clear JSON rows (while existing data is being encrypted);
    without it a clear row raises `DecryptionError`, so rows inserted in clear behind the
    store's back are not served.
    """

    __slots__ = ("accept_clear",)
    verify_row_ids = True
    """The stores compare each row's id column with the sealed id on reads of many rows."""

    def __init__(self, *, accept_clear: bool = False) -> None:
        self.accept_clear = bool(accept_clear)

    def __repr__(self) -> str:
        return f"EnvelopeCodec(accept_clear={self.accept_clear})"

    # Sealing

    def _seal(self, kind: PayloadKind, thread_id: str, row_id: str, text: str) -> str:
        active = _active()
        owner = active.owner
        keys = None if owner is None else active.keys.get(owner)
        if owner is None or keys is None or keys.current is None:
            raise RuntimeError("EncryptedStore did not provide a data key for this write")
        header = Header(kind, keys.current, owner, thread_id, row_id)
        packed = header.pack()
        sealed = _aead.seal(keys.ciphers[keys.current], text.encode(), _AAD_TAG + packed)
        return PREFIX + binascii.b2a_base64(packed + sealed, newline=False).decode("ascii")

    def _open(
        self, kind: PayloadKind, payload: str | bytes, active: _Scope | None = None
    ) -> tuple[tuple[bytes, bytes] | None, str | bytes]:
        """(the sealed (row id, thread id), the plaintext JSON); (None, payload) for a clear
        payload. The hot path of every read: parsed with slices, no objects per field."""
        if not is_envelope(payload):
            if self.accept_clear:
                return None, payload
            raise DecryptionError(
                "a stored payload is not encrypted; while existing rows are being encrypted "
                "use EnvelopeCodec(accept_clear=True)"
            )
        if active is None:
            active = _active()
        try:
            raw = binascii.a2b_base64(payload[_PREFIX_LENGTH:])
            version = int.from_bytes(raw[1:5], "big")
            end = 7 + int.from_bytes(raw[5:7], "big")
            owner_b = raw[7:end]
            start = end + 2
            end = start + int.from_bytes(raw[end:start], "big")
            thread_b = raw[start:end]
            start = end + 2
            end = start + int.from_bytes(raw[end:start], "big")
            row_b = raw[start:end]
            if end > len(raw) or len(raw) < 7:
                raise ValueError("truncated")
            owner = active.owner if active.owner is not None else owner_b.decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise DecryptionError("a stored payload is not a valid chatkit-kit envelope") from None
        if raw[0] != _KIND_CODES[kind] or owner_b != active.owner_bytes(owner):
            raise DecryptionError(
                f"a stored {kind} payload was written for another owner or as another kind of "
                "row (copied or altered): it is not returned",
                owner=owner,
                row_id=row_b.decode(errors="replace"),
            )
        if kind == "item" and active.thread_bytes is not None and thread_b != active.thread_bytes:
            raise DecryptionError(
                f"item {row_b.decode(errors='replace')!r} was written in another thread than "
                f"{active.thread_id!r} (copied or altered): it is not returned",
                owner=owner,
                row_id=row_b.decode(errors="replace"),
            )
        keys = active.keys.get(owner)
        aead = None if keys is None else keys.ciphers.get(version)
        if aead is None:
            if owner in active.shredded:
                raise DataKeyDestroyedError(
                    f"the data key of owner {owner!r} was destroyed (crypto-shredded, e.g. by "
                    "erase_owner): its rows can never be read again",
                    owner=owner,
                    row_id=row_b.decode(errors="replace"),
                )
            raise _KeyNeeded(owner, version)
        try:
            # The owner is the header's (checked above): the packed header is the AAD.
            plain = _aead.open_sealed(aead, raw[end:], _AAD_TAG + raw[:end])
        except _aead.InvalidTag:
            raise DecryptionError(
                f"a stored {kind} payload does not decrypt for owner {owner!r} and row "
                f"{row_b.decode(errors='replace')!r}: it was copied from another row or altered",
                owner=owner,
                row_id=row_b.decode(errors="replace"),
            ) from None
        return (row_b, thread_b), plain

    def _open_page(
        self, kind: PayloadKind, payloads: Sequence[str | bytes], active: _Scope | None
    ) -> list[bytes] | None:
        """The plaintexts of a page of one owner's sealed payloads, in one pass: the key looked
        up once per data-key version, the header compared with the scope's owner (and thread)
        in place, the ciphertext not copied. None when a row needs `_open` (a clear row, another
        owner's, an unknown key, a bad tag): the caller then opens the page row by row, which
        reads or raises exactly as ever."""
        if active is None:
            active = _active()
        owner = active.owner
        keys = None if owner is None else active.keys.get(owner)
        if owner is None or keys is None:
            return None
        owner_b = active.owner_bytes(owner)
        fields = _LENGTH.pack(len(owner_b)) + owner_b
        thread_b = active.thread_bytes if kind == "item" else None
        if thread_b is not None:
            fields += _LENGTH.pack(len(thread_b)) + thread_b
        id_at = 5 + len(fields)  # the next field's length (the thread's, or the row id's)
        code = _KIND_CODES[kind]
        ciphers = keys.ciphers
        a2b = binascii.a2b_base64
        invalid_tag = _aead.InvalidTag
        nonce_bytes, tag_bytes, aad_tag = _aead.NONCE_BYTES, _aead.TAG_BYTES, _AAD_TAG
        minimum = id_at + 2 + nonce_bytes + tag_bytes
        version = b""
        aead: Any = None
        plains: list[bytes] = []
        append = plains.append
        for payload in payloads:
            if payload.__class__ is not str or not payload.startswith(PREFIX):
                return None
            try:
                raw = a2b(payload[_PREFIX_LENGTH:])
            except (binascii.Error, ValueError):
                return None
            size = len(raw)
            if size < minimum or raw[0] != code or not raw.startswith(fields, 5):
                return None  # another owner or kind, or (items) thread: `_open` says which
            at = id_at
            if thread_b is None:  # a thread row: skip its thread field
                at += 2 + (raw[at] << 8 | raw[at + 1])
                if at + 2 > size:
                    return None
            end = at + 2 + (raw[at] << 8 | raw[at + 1])
            if end + nonce_bytes + tag_bytes > size:
                return None
            if not raw.startswith(version, 1) or aead is None:
                version = raw[1:5]
                aead = ciphers.get(int.from_bytes(version, "big"))
                if aead is None:
                    return None
            view = memoryview(raw)
            try:
                append(
                    aead.decrypt(
                        view[end : end + nonce_bytes],
                        view[end + nonce_bytes :],
                        aad_tag + raw[:end],
                    )
                )
            except (invalid_tag, ValueError):
                return None
        return plains

    @staticmethod
    def _check(
        sealed: tuple[bytes, bytes] | None, row_id: str, thread_id: str | None = None
    ) -> None:
        if sealed is None:
            return
        row_b, thread_b = sealed
        if row_b != row_id.encode() or (thread_id is not None and thread_b != thread_id.encode()):
            raise DecryptionError(
                f"a stored payload holds row {row_id!r}, not the row its sealed header names "
                "(altered)",
                row_id=row_b.decode(errors="replace"),
            )

    # StoreCodec

    def encode_thread(self, thread: ThreadMetadata) -> str:
        return self._seal("thread", thread.id, thread.id, _JSON.encode_thread(thread))

    def decode_thread(self, payload: str | bytes) -> ThreadMetadata:
        header, plain = self._open("thread", payload)
        thread = _JSON.decode_thread(plain)
        self._check(header, thread.id, thread.id)
        return thread

    def decode_threads(self, payloads: Sequence[str | bytes]) -> list[ThreadMetadata]:
        active = _SCOPE.get()
        plains = self._open_page("thread", payloads, active)
        if plains is not None:
            # Sealed rows of the scope's owner: their ids are bound by the tag, and the store
            # checks each against its row's id column (`verify_row_ids`). One JSON array.
            return _THREAD_PAGE.validate_json(b"[" + b",".join(plains) + b"]")
        opened = [self._open("thread", p, active) for p in payloads]
        threads = _JSON.decode_threads([plain for _, plain in opened])
        for (header, _), thread in zip(opened, threads, strict=True):
            self._check(header, thread.id, thread.id)
        return threads

    def encode_item(self, item: ThreadItem) -> str:
        active = _SCOPE.get()
        thread_id = active.thread_id if active and active.thread_id else item.thread_id
        return self._seal("item", thread_id, item.id, _JSON.encode_item(item))

    def decode_item(self, payload: str | bytes) -> ThreadItem:
        header, plain = self._open("item", payload)
        item = _JSON.decode_item(plain)
        self._check(header, item.id)
        return item

    def decode_items(self, payloads: Sequence[str | bytes]) -> list[ThreadItem]:
        active = _SCOPE.get()
        plains = self._open_page("item", payloads, active)
        if plains is not None:
            joined = b"[" + b",".join(plains) + b"]"
            if _WIDGET_TYPE not in joined:  # widget items need the default codec's classes
                items: list[ThreadItem] = _ITEM_PAGE.validate_json(joined)
                return items
            return _JSON.decode_items(plains)
        opened = [self._open("item", p, active) for p in payloads]
        items = _JSON.decode_items([plain for _, plain in opened])
        for (header, _), item in zip(opened, items, strict=True):
            self._check(header, item.id)
        return items

    def encode_attachment(self, attachment: Attachment) -> str:
        text = _JSON.encode_attachment(attachment)
        return self._seal("attachment", attachment.thread_id or "", attachment.id, text)

    def decode_attachment(self, payload: str | bytes) -> Attachment:
        header, plain = self._open("attachment", payload)
        attachment = _JSON.decode_attachment(plain)
        self._check(header, attachment.id)
        return attachment


def reseal(codec: EnvelopeCodec, kind: PayloadKind, payload: str) -> str:
    """`payload` (clear or sealed) decoded and sealed again under the scope's current key."""
    if not is_envelope(payload):
        codec = EnvelopeCodec(accept_clear=True)  # an explicit migration reads clear rows
    if kind == "thread":
        return codec.encode_thread(codec.decode_thread(payload))
    if kind == "item":
        return codec.encode_item(codec.decode_item(payload))
    return codec.encode_attachment(codec.decode_attachment(payload))
