"""`KMSKeyProvider`: data keys wrapped by an AWS KMS key (boto3, the `s3` extra).

Each data key is encrypted by KMS `Encrypt` under `key_id` (a key id, ARN or `alias/...`) with
the encryption context `{"chatkit-kit-owner": owner}`, so a wrapped key copied to another owner
does not decrypt, and CloudTrail logs name the owner whose key was unwrapped. The key
material never leaves KMS. To rotate the KEK, point `key_id` at the new key (keeping IAM
permission to decrypt under the old one) and run `chatkit-kit encryption rotate-kek`; KMS's own
automatic rotation of a key needs nothing from us (old backing keys still decrypt).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._optional import require
from ..errors import KeyProviderError

CONTEXT_KEY = "chatkit-kit-owner"
DEFAULT_TIMEOUT_SECONDS = 10.0


class KMSKeyProvider:
    """Wraps data keys with the AWS KMS key `key_id` (calls run in a worker thread).

    `client`: a boto3 KMS client (default: one made from `region_name`, `endpoint_url` and the
    usual AWS configuration, with connect and read timeouts of `timeout` seconds and two
    retries).
    """

    def __init__(
        self,
        key_id: str,
        *,
        client: Any = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if not isinstance(key_id, str) or not 0 < len(key_id) <= 255:
            raise ValueError("key_id must be a KMS key id, ARN or alias of 1 to 255 characters")
        if client is None:
            boto3 = require("boto3", "s3", "chatkit_kit.encryption.KMSKeyProvider")
            botocore_config = require("botocore.config", "s3", "KMSKeyProvider")
            config = botocore_config.Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 2, "mode": "standard"},
            )
            client = boto3.client(
                "kms", region_name=region_name, endpoint_url=endpoint_url, config=config
            )
        self._key_id = key_id
        self._client = client

    @property
    def current_kek_id(self) -> str:
        return self._key_id

    def __repr__(self) -> str:
        return f"KMSKeyProvider({self._key_id!r})"

    async def _call(self, operation: str, **arguments: Any) -> dict[str, Any]:
        botocore = require("botocore.exceptions", "s3", "KMSKeyProvider")
        try:
            method = getattr(self._client, operation)
            answer: dict[str, Any] = await asyncio.to_thread(method, **arguments)
        except (botocore.ClientError, botocore.BotoCoreError) as exc:
            raise KeyProviderError(f"AWS KMS {operation} failed: {exc}") from exc
        return answer

    async def wrap(self, data_key: bytes, owner: str) -> tuple[str, bytes]:
        answer = await self._call(
            "encrypt",
            KeyId=self._key_id,
            Plaintext=data_key,
            EncryptionContext={CONTEXT_KEY: owner},
        )
        return self._key_id, bytes(answer["CiphertextBlob"])

    async def unwrap(self, kek_id: str, wrapped: bytes, owner: str) -> bytes:
        answer = await self._call(
            "decrypt",
            KeyId=kek_id,
            CiphertextBlob=wrapped,
            EncryptionContext={CONTEXT_KEY: owner},
        )
        return bytes(answer["Plaintext"])
