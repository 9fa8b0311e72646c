"""Encryption at rest with a data key per owner (the `encryption` extra: `cryptography`).

Build the store with `codec=EnvelopeCodec()` and wrap it in `EncryptedStore` with a key provider:

```python
from chatkit_kit.encryption import EncryptedStore, EnvelopeCodec, LocalKeyProvider
from chatkit_kit.stores import MemoryStore

store = EncryptedStore(MemoryStore(codec=EnvelopeCodec()), LocalKeyProvider.from_env())
```

See docs/encryption.md: the threat model, key handling, rotation, crypto-shredding, KMS.
Names that need `cryptography` (or boto3, for `KMSKeyProvider`) are imported on first use; a
missing one raises `MissingDependencyError` naming the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._optional import lazy_exports
from ..errors import DataKeyDestroyedError, DecryptionError, KeyProviderError
from .cache import DataKeyCache, OwnerKeys
from .provider import KeyProvider

__all__ = [
    "DataKeyCache",
    "DataKeyDestroyedError",
    "DecryptionError",
    "EncryptedBlobStorage",
    "EncryptedStore",
    "EnvelopeCodec",
    "KMSKeyProvider",
    "KeyProvider",
    "KeyProviderError",
    "LocalKeyProvider",
    "OwnerKeys",
    "RewriteReport",
    "encrypt_existing",
    "rewrap_blobs",
    "rotate_data_key",
    "rotate_kek",
]

_LAZY: dict[str, tuple[str, str]] = {
    "EncryptedBlobStorage": ("blobs", "encryption"),
    "EncryptedStore": ("store", "encryption"),
    "EnvelopeCodec": ("envelope", "encryption"),
    "LocalKeyProvider": ("local", "encryption"),
    "KMSKeyProvider": ("kms", "s3"),
    "RewriteReport": ("rotation", "encryption"),
    "rotate_kek": ("rotation", "encryption"),
    "rotate_data_key": ("rotation", "encryption"),
    "rewrap_blobs": ("rotation", "encryption"),
    "encrypt_existing": ("migration", "encryption"),
}

if TYPE_CHECKING:
    from .blobs import EncryptedBlobStorage
    from .envelope import EnvelopeCodec
    from .kms import KMSKeyProvider
    from .local import LocalKeyProvider
    from .migration import encrypt_existing
    from .rotation import RewriteReport, rewrap_blobs, rotate_data_key, rotate_kek
    from .store import EncryptedStore

__getattr__ = lazy_exports(__name__, _LAZY)
