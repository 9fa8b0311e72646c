"""The attachments package imports without its extras and names the extra when one is needed."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from chatkit_kit._install import install_command
for name in ("boto3", "botocore", "starlette", "python_multipart"):
    sys.modules[name] = None  # as if not installed
import chatkit_kit.attachments as attachments
assert attachments.UploadPolicy().max_size > 0
assert attachments.LocalBlobStorage is not None
for name, extra in (
    ("S3AttachmentStore", "s3"),
    ("S3BlobStorage", "s3"),
    ("DirectUploadAttachmentStore", "server"),
):
    try:
        getattr(attachments, name)
    except ImportError as exc:
        assert str(exc).endswith(install_command(extra)), str(exc)
    else:
        raise AssertionError(name + " imported without its extra")
print("ok")
"""


def test_extras_are_named_when_missing() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
