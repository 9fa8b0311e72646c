"""The demo tests reuse the moto S3 server fixtures of the attachment tests."""

from __future__ import annotations

from tests.attachments.conftest import bucket, s3_client, s3_endpoint

__all__ = ["bucket", "s3_client", "s3_endpoint"]
