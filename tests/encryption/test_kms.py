"""`KMSKeyProvider` against moto's KMS in server mode (real HTTP on loopback, as the S3 tests):
data keys wrapped by a KMS key, bound to their owner by the encryption context, rotated to a
new KMS key by `rotate_kek`."""

from __future__ import annotations

import base64
from typing import Any

import boto3
import pytest
from chatkit.types import ThreadMetadata

from chatkit_kit.encryption import (
    EncryptedStore,
    EnvelopeCodec,
    KeyProviderError,
    KMSKeyProvider,
    rotate_kek,
)
from chatkit_kit.stores import MemoryStore
from tests.stores.encryption_support import MARKER


@pytest.fixture
def kms_client(s3_endpoint: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def new_key(client: Any) -> str:
    key_id: str = client.create_key(Description="chatkit-kit test KEK")["KeyMetadata"]["Arn"]
    return key_id


async def test_data_keys_are_wrapped_by_kms(kms_client: Any) -> None:
    key = new_key(kms_client)
    provider = KMSKeyProvider(key, client=kms_client)
    store = EncryptedStore(MemoryStore(codec=EnvelopeCodec()), provider)
    context = {"user_id": "alice"}
    await store.save_thread(ThreadMetadata(id="t", created_at="2026-12-01", title=MARKER), context)
    (wrapped,) = await store.key_table.load_data_keys("alice")
    assert wrapped.kek_id == key
    cold = EncryptedStore(store.store, KMSKeyProvider(key, client=kms_client))
    assert (await cold.load_thread("t", context)).title == MARKER
    # The encryption context binds the wrapped key to its owner.
    with pytest.raises(KeyProviderError, match="decrypt"):
        await provider.unwrap(key, base64.b64decode(wrapped.wrapped), "mallory")


async def test_rotate_kek_moves_data_keys_to_a_new_kms_key(kms_client: Any) -> None:
    old, new = new_key(kms_client), new_key(kms_client)
    inner = MemoryStore(codec=EnvelopeCodec())
    store = EncryptedStore(inner, KMSKeyProvider(old, client=kms_client))
    for owner in ("a", "b"):
        thread = ThreadMetadata(id="t", created_at="2026-12-01", title=owner)
        await store.save_thread(thread, {"user_id": owner})
    rotated = EncryptedStore(inner, KMSKeyProvider(new, client=kms_client))
    report = await rotate_kek(rotated)
    assert report.rewrapped == 2
    assert {k.kek_id for o in "ab" for k in await inner.load_data_keys(o)} == {new}
    kms_client.disable_key(KeyId=old.rsplit("/", 1)[1])  # reads no longer need it
    cold = EncryptedStore(inner, KMSKeyProvider(new, client=kms_client))
    assert (await cold.load_thread("t", {"user_id": "b"})).title == "b"


async def test_an_unreachable_kms_is_a_key_provider_error() -> None:
    provider = KMSKeyProvider(
        "alias/none", region_name="us-east-1", endpoint_url="http://127.0.0.1:9", timeout=1
    )
    with pytest.raises(KeyProviderError):
        await provider.wrap(b"k" * 32, "alice")
