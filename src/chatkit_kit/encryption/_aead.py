"""The one import of the `cryptography` package (the `encryption` extra): AES-256-GCM."""

from __future__ import annotations

import os
from typing import Any

from .._optional import require

_aead = require(
    "cryptography.hazmat.primitives.ciphers.aead", "encryption", "chatkit_kit.encryption"
)
_exceptions = require("cryptography.exceptions", "encryption", "chatkit_kit.encryption")

InvalidTag: type[Exception] = _exceptions.InvalidTag
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


def cipher(key: bytes) -> Any:
    """An AES-256-GCM cipher object for the 32-byte `key`."""
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise ValueError(f"an AES-256 key is {KEY_BYTES} bytes")
    return _aead.AESGCM(key)


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def seal(aead: Any, plaintext: bytes, associated: bytes) -> bytes:
    """nonce + ciphertext + tag (a random 96-bit nonce per message)."""
    nonce = os.urandom(NONCE_BYTES)
    sealed: bytes = aead.encrypt(nonce, plaintext, associated)
    return nonce + sealed


def open_sealed(aead: Any, sealed: bytes, associated: bytes) -> bytes:
    """The plaintext of `seal`'s output; InvalidTag when it was altered or bound elsewhere."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise InvalidTag()
    plaintext: bytes = aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated)
    return plaintext
