"""`LocalKeyProvider`: key-encryption keys from a keyring file or an environment variable.

For tests, development and small apps that keep their keys next to the process (a secret
mounted as a file or injected as a variable). A keyring is JSON:

    {"current": "2026-12", "keys": {"2026-06": "<base64 of 32 bytes>", "2026-12": "..."}}

`current` wraps new data keys; every other listed key still unwraps the data keys it wrapped,
so a rotation adds a key, makes it current, runs `chatkit-kit encryption rotate-kek`, and only
then removes the old key. Data keys are wrapped with AES-256-GCM, the owner as associated data.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import KeyProviderError
from . import _aead

DEFAULT_ENV_VAR = "CHATKIT_KIT_KEYRING"
MAX_KEYRING_BYTES = 1 << 20
_AAD = b"chatkit-kit/data-key/1\x00"


class LocalKeyProvider:
    """KEKs held in memory: `keys` maps KEK id -> 32 key bytes; `current` wraps new data keys."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        if current not in keys:
            raise ValueError(f"the current key {current!r} is not in the keyring")
        self._ciphers: dict[str, Any] = {}
        for kek_id, key in keys.items():
            if not isinstance(kek_id, str) or not 0 < len(kek_id) <= 255:
                raise ValueError("a KEK id is 1 to 255 characters")
            self._ciphers[kek_id] = _aead.cipher(key)
        self._current = current

    @classmethod
    def from_json(cls, text: str | bytes) -> LocalKeyProvider:
        """A provider from keyring JSON (see this module); ValueError naming what is wrong."""
        try:
            data = json.loads(text)
            current = data["current"]
            keys = {
                str(kek_id): base64.b64decode(value, validate=True)
                for kek_id, value in dict(data["keys"]).items()
            }
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise ValueError(
                'a keyring is JSON {"current": ID, "keys": {ID: base64 of 32 bytes, ...}}'
            ) from exc
        return cls(keys, str(current))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> LocalKeyProvider:
        raw = Path(path).read_bytes()[: MAX_KEYRING_BYTES + 1]
        if len(raw) > MAX_KEYRING_BYTES:
            raise ValueError(f"keyring file {path} is larger than {MAX_KEYRING_BYTES} bytes")
        return cls.from_json(raw)

    @classmethod
    def from_env(cls, name: str = DEFAULT_ENV_VAR) -> LocalKeyProvider:
        """From the keyring JSON in environment variable `name`, or the file it names when it
        starts with `@` (e.g. `CHATKIT_KIT_KEYRING=@/run/secrets/keyring.json`)."""
        value = os.environ.get(name)
        if not value:
            raise ValueError(f"environment variable {name} holds no keyring")
        if value.startswith("@"):
            return cls.from_file(value[1:])
        return cls.from_json(value)

    @staticmethod
    def new_keyring(kek_id: str, previous: str | None = None) -> str:
        """Keyring JSON with a new random key `kek_id` made current (keeping `previous`' keys)."""
        keys: dict[str, str] = {}
        if previous is not None:
            keys = dict(json.loads(previous)["keys"])
        if kek_id in keys:
            raise ValueError(f"the keyring already has a key {kek_id!r}")
        keys[kek_id] = base64.b64encode(_aead.new_key()).decode()
        return json.dumps({"current": kek_id, "keys": keys}, indent=2)

    @property
    def current_kek_id(self) -> str:
        return self._current

    @property
    def kek_ids(self) -> list[str]:
        return sorted(self._ciphers)

    def __repr__(self) -> str:
        return f"LocalKeyProvider(current={self._current!r}, keys={self.kek_ids})"

    async def wrap(self, data_key: bytes, owner: str) -> tuple[str, bytes]:
        aead = self._ciphers[self._current]
        return self._current, _aead.seal(aead, data_key, _AAD + owner.encode())

    async def unwrap(self, kek_id: str, wrapped: bytes, owner: str) -> bytes:
        aead = self._ciphers.get(kek_id)
        if aead is None:
            raise KeyProviderError(
                f"the keyring has no key {kek_id!r}, which wrapped a data key of owner "
                f"{owner!r}: put the old key back in the keyring (rotate-kek before removing one)"
            )
        try:
            return _aead.open_sealed(aead, wrapped, _AAD + owner.encode())
        except _aead.InvalidTag:
            raise KeyProviderError(
                f"a data key of owner {owner!r} does not unwrap with key {kek_id!r} (altered, "
                "or copied from another owner)"
            ) from None
