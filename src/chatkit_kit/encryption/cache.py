"""`DataKeyCache`: unwrapped data keys of recently active owners, bounded and expiring.

Unwrapping a data key is a call to the key provider (a network round trip to AWS KMS), so an
`EncryptedStore` keeps the unwrapped keys of at most `max_owners` owners, least recently used
out first, each for at most `ttl` seconds. The expiry bounds how long another process keeps
using a key after a rotation or an erasure elsewhere: it reloads from the store once it expires.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_OWNERS = 1024
DEFAULT_TTL_SECONDS = 300.0
MAX_OWNERS_LIMIT = 1_000_000


@dataclass(frozen=True)
class OwnerKeys:
    """One owner's unwrapped data keys: version -> AES-GCM cipher; `current` encrypts new rows
    (None: the owner has no data key yet)."""

    owner: str
    ciphers: Mapping[int, Any] = field(default_factory=dict)

    @property
    def current(self) -> int | None:
        return max(self.ciphers) if self.ciphers else None

    def __repr__(self) -> str:
        return f"OwnerKeys(owner={self.owner!r}, versions={sorted(self.ciphers)})"


class DataKeyCache:
    """An LRU of `OwnerKeys` by owner: at most `max_owners` entries, each for `ttl` seconds."""

    def __init__(
        self,
        max_owners: int = DEFAULT_MAX_OWNERS,
        ttl: float = DEFAULT_TTL_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(max_owners, bool) or not isinstance(max_owners, int):
            raise TypeError(f"max_owners must be an int, got {max_owners!r}")
        if not 1 <= max_owners <= MAX_OWNERS_LIMIT:
            raise ValueError(f"max_owners must be 1 to {MAX_OWNERS_LIMIT}, got {max_owners}")
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        self.max_owners = max_owners
        self.ttl = float(ttl)
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, OwnerKeys]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, owner: str) -> OwnerKeys | None:
        """The cached keys of `owner`, or None when absent or expired (counted as a miss)."""
        entry = self._entries.get(owner)
        if entry is None or entry[0] <= self._clock():
            if entry is not None:
                del self._entries[owner]
            self.misses += 1
            return None
        self._entries.move_to_end(owner)
        self.hits += 1
        return entry[1]

    def put(self, keys: OwnerKeys) -> None:
        self._entries[keys.owner] = (self._clock() + self.ttl, keys)
        self._entries.move_to_end(keys.owner)
        while len(self._entries) > self.max_owners:
            self._entries.popitem(last=False)

    def discard(self, owner: str) -> None:
        self._entries.pop(owner, None)

    def clear(self) -> None:
        self._entries.clear()

    def __repr__(self) -> str:
        return f"DataKeyCache(max_owners={self.max_owners}, ttl={self.ttl}, size={len(self)})"
