"""`KeyProvider`: the key-encryption keys (KEKs) that wrap every owner's data key.

A provider never sees payloads: the store asks it to wrap a fresh 32-byte data key (once per
owner and data-key version) and to unwrap it again when the data key is not in the store's
cache. chatkit-kit ships `LocalKeyProvider` (a keyring file or environment variable) and
`KMSKeyProvider` (AWS KMS); Vault, GCP KMS or an HSM are a small class of your own.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class KeyProvider(Protocol):
    """Wraps and unwraps data keys with key-encryption keys named by id.

    `owner` is the owner key the data key belongs to: bind it to the wrapped key (AES-GCM
    associated data, a KMS encryption context), so a wrapped key copied to another owner does
    not unwrap. Raise `chatkit_kit.errors.KeyProviderError` for anything that goes wrong.
    """

    @property
    def current_kek_id(self) -> str:
        """The id of the KEK new data keys are wrapped with (1 to 255 characters)."""
        ...

    async def wrap(self, data_key: bytes, owner: str) -> tuple[str, bytes]:
        """Encrypt `data_key` under the current KEK; return (that KEK's id, the wrapped key)."""
        ...

    async def unwrap(self, kek_id: str, wrapped: bytes, owner: str) -> bytes:
        """Decrypt a key `wrap` returned for `owner` under the KEK `kek_id`."""
        ...
