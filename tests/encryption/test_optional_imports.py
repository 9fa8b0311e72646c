"""`chatkit_kit.encryption` imports without `cryptography` (and boto3), and names the extra
when a part that needs it is used."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from chatkit_kit._install import install_command
for name in ("cryptography", "boto3", "botocore"):
    sys.modules[name] = None  # as if not installed
import chatkit_kit.encryption as encryption
assert encryption.KeyProvider is not None and encryption.DataKeyCache(8).max_owners == 8
for name, extra in (
    ("EncryptedStore", "encryption"),
    ("EncryptedBlobStorage", "encryption"),
    ("EnvelopeCodec", "encryption"),
    ("LocalKeyProvider", "encryption"),
    ("rotate_kek", "encryption"),
    ("encrypt_existing", "encryption"),
):
    try:
        getattr(encryption, name)
    except ImportError as exc:
        assert str(exc).endswith(install_command(extra)), (name, str(exc))
    else:
        raise AssertionError(name + " imported without its extra")
try:  # boto3 is needed once a client is made
    encryption.KMSKeyProvider("alias/app")
except ImportError as exc:
    assert str(exc).endswith(install_command("s3")), str(exc)
else:
    raise AssertionError("KMSKeyProvider made a client without boto3")
print("ok")
"""


def test_the_extra_is_named_when_missing() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
