"""Helpers for the encryption tests: a fixed test keyring and encrypted stores of each kind."""

from __future__ import annotations

import base64
import json
from typing import Any

from chatkit_kit.encryption import EncryptedStore, EnvelopeCodec, LocalKeyProvider
from chatkit_kit.stores import MemoryStore

from .sql_support import Flavour

MARKER = "zq-plaintext-marker-7f3a"
"""A string no ciphertext or id contains by chance: found in stored bytes, it leaked."""

KEYRING = json.dumps(
    {
        "current": "k1",
        "keys": {"k1": base64.b64encode(bytes(range(32))).decode()},
    }
)


def provider() -> LocalKeyProvider:
    return LocalKeyProvider.from_json(KEYRING)


def encrypted_memory(**codec: Any) -> EncryptedStore[Any]:
    return EncryptedStore(MemoryStore(codec=EnvelopeCodec(**codec)), provider())


async def encrypted_sql(flavour: Flavour, **kwargs: Any) -> EncryptedStore[Any]:
    accept_clear = kwargs.pop("accept_clear", False)
    inner = await flavour.make(codec=EnvelopeCodec(accept_clear=accept_clear), **kwargs)
    return EncryptedStore(inner, provider())
