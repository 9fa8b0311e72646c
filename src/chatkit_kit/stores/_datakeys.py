"""`DataKeyTable`: where a store keeps wrapped data keys and lets payloads be rewritten in place.

Every chatkit-kit store implements it (the memory store in its dicts, the SQL stores in the
`data_keys` table of schema version 4). `chatkit_kit.encryption` uses it: the wrapped (encrypted)
data key of each owner, one row per key version, and raw payload rows, scanned in bounded
batches in key order and replaced only if unchanged (compare-and-swap), for key rotation and for
encrypting existing rows. Nothing here decrypts: the store only keeps text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

PayloadKind = Literal["thread", "item", "attachment"]
PAYLOAD_KINDS: tuple[PayloadKind, ...] = ("thread", "item", "attachment")
MAX_KEY_ID_LENGTH = 255
MAX_WRAPPED_LENGTH = 8192
"""Bounds of a stored key-encryption key id and wrapped data key (text)."""


@dataclass(frozen=True)
class WrappedDataKey:
    """One version of an owner's data key, as stored: wrapped by the key-encryption key `kek_id`.

    `wrapped` is text (base64 of what the key provider returned).
    """

    owner: str
    version: int
    kek_id: str
    wrapped: str

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int):
            raise TypeError(f"version must be an int, got {self.version!r}")
        if not 1 <= self.version <= 2**31 - 1:
            raise ValueError(f"version must be 1 to 2**31 - 1, got {self.version}")
        if not isinstance(self.kek_id, str) or not 0 < len(self.kek_id) <= MAX_KEY_ID_LENGTH:
            raise ValueError(f"kek_id must be 1 to {MAX_KEY_ID_LENGTH} characters")
        if not isinstance(self.wrapped, str) or not 0 < len(self.wrapped) <= MAX_WRAPPED_LENGTH:
            raise ValueError(f"wrapped must be 1 to {MAX_WRAPPED_LENGTH} characters of text")

    def __repr__(self) -> str:  # never print key material, even wrapped
        return (
            f"WrappedDataKey(owner={self.owner!r}, version={self.version}, kek_id={self.kek_id!r})"
        )


@dataclass(frozen=True)
class StoredPayload:
    """One stored row's payload as the store holds it (`kind`: thread, item or attachment).

    `thread_id` is the thread's own id for a thread row and None for an unattached attachment.
    """

    kind: PayloadKind
    owner: str
    thread_id: str | None
    id: str
    payload: str


def check_kind(kind: str) -> PayloadKind:
    for known in PAYLOAD_KINDS:
        if kind == known:
            return known
    raise ValueError(f"kind must be one of {', '.join(PAYLOAD_KINDS)}, got {kind!r}")


@runtime_checkable
class DataKeyTable(Protocol):
    """Wrapped data keys per owner, and raw payload rows for rewriting (every chatkit-kit store)."""

    async def load_data_keys(self, owner: str) -> list[WrappedDataKey]:
        """Every stored version of `owner`'s data key, oldest first (empty: none)."""
        ...

    async def add_data_key(self, key: WrappedDataKey) -> None:
        """Store `key` unless its (owner, version) exists (then the stored one stays)."""
        ...

    async def rewrap_data_key(self, key: WrappedDataKey, previous: WrappedDataKey) -> None:
        """Replace `previous` (same owner and version) by `key`, only if it is still stored."""
        ...

    async def delete_data_keys(self, owner: str, version: int | None = None) -> None:
        """Delete `owner`'s data key `version`, or every version (crypto-shredding)."""
        ...

    async def data_keys_not_under(self, kek_id: str, limit: int) -> list[WrappedDataKey]:
        """Up to `limit` stored data keys wrapped by another key-encryption key than `kek_id`."""
        ...

    async def payload_rows(
        self, kind: PayloadKind, after: StoredPayload | None, limit: int
    ) -> list[StoredPayload]:
        """Up to `limit` rows of `kind` after `after`, in key order (owner, thread, id)."""
        ...

    async def replace_payload(self, row: StoredPayload, payload: str) -> bool:
        """Set `row`'s payload to `payload` if it still holds `row.payload`; whether it did."""
        ...
