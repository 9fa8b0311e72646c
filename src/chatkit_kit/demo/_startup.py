"""What `chatkit-kit demo` checks before it serves, and how it prints URLs.

Every check raises `DemoStartupError` with one line that says what to do, so the CLI prints
that line instead of a traceback. Printed URLs go through `mask_url`: passwords never appear.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from .._install import install_command
from ..errors import (
    DatabaseConfigurationError,
    DatabaseUnavailableError,
    MissingDependencyError,
    SchemaVersionError,
)
from ..stores import redact_database_url

DRIVER_EXTRAS = {
    "sqlalchemy": "demo",
    "aiosqlite": "demo",
    "asyncpg": "asyncpg",
    "psycopg": "psycopg",
    "psycopg_binary": "psycopg",
    "aiomysql": "mysql",
    "asyncmy": "mysql",
    "pymysql": "mysql",
    "boto3": "s3",
    "botocore": "s3",
}
"""Which chatkit-kit extra installs each module the demo may need."""


_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


class DemoStartupError(Exception):
    """The demo cannot start; the message is one line saying what to do."""


def mask_url(url: str) -> str:
    """`url` with its password (if any) replaced by `***` (the stores' own redaction)."""
    return redact_database_url(url)


def _redact(text: str, url: str | None) -> str:
    """`text` with `url`, and its `:password@` part wherever it appears, masked."""
    if not url:
        return text
    text = text.replace(url, mask_url(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    if password:
        text = text.replace(f":{password}@", ":***@")
    return text


def _one_line(exc: BaseException, url: str | None = None) -> str:
    """`exc`'s message on one line (or its class name), with `url`'s password masked."""
    line = " ".join(str(exc).split()) or type(exc).__name__
    return _redact(line, url)


def _database_problem(exc: Exception, url: str) -> str:
    """What went wrong opening the database, and what to check, on one line."""
    cause = exc.__cause__
    cause = getattr(cause, "orig", None) or cause  # SQLAlchemy wraps the driver's error
    detail = _one_line(cause if cause is not None else exc, url)
    if isinstance(exc, DatabaseUnavailableError):
        return f"{detail}; check that the server is running and the host and port are right"
    if isinstance(exc, DatabaseConfigurationError) and not isinstance(exc, SchemaVersionError):
        return f"{detail}; check that the database exists and the user name and password are right"
    return _one_line(exc, url)


def missing_module_message(exc: ImportError) -> str:
    """One line naming the chatkit-kit extra that installs the module `exc` is missing."""
    message = str(exc)
    if isinstance(exc, MissingDependencyError) or "install it with: " in message:
        return message.splitlines()[0]
    module = (exc.name or "").split(".")[0]
    extra = DRIVER_EXTRAS.get(module, "demo")
    return (
        f"the Python module {module or '?'!r} is not installed; "
        f"install it with: {install_command(extra)}"
    )


async def check_database(url: str) -> int:
    """Open `url`, bring its schema up to date and close it; returns the schema version."""
    masked = mask_url(url)
    try:
        from ..stores import SQLAlchemyStore

        store: Any = SQLAlchemyStore.from_url(url)
    except ImportError as exc:
        raise DemoStartupError(
            f"cannot use the database {masked}: {missing_module_message(exc)}"
        ) from exc
    except Exception as exc:
        raise DemoStartupError(
            f"cannot use the database URL {masked}: {_one_line(exc, url)}"
        ) from exc
    try:
        version: int = await store.migrate()
    except ImportError as exc:
        raise DemoStartupError(
            f"cannot use the database {masked}: {missing_module_message(exc)}"
        ) from exc
    except Exception as exc:
        raise DemoStartupError(
            f"cannot open the database {masked}: {_database_problem(exc, url)}"
        ) from exc
    finally:
        await store.close()
    return version


def make_s3_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client that signs with SigV4 (presigned PUTs need it)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, config=Config(signature_version="s3v4"))


def check_s3_bucket(client: Any, bucket: str, endpoint_url: str | None) -> None:
    """Raise DemoStartupError unless `bucket` exists and the credentials may use it."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    where = f"at {mask_url(endpoint_url)}" if endpoint_url else "on AWS"
    try:
        client.head_bucket(Bucket=bucket)
    except NoCredentialsError as exc:
        raise DemoStartupError(
            f"no AWS credentials for S3 bucket {bucket!r}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or drop --s3-bucket to keep uploads on "
            "local disk"
        ) from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchBucket", "NotFound"}:
            raise DemoStartupError(
                f"S3 bucket {bucket!r} does not exist {where}: create it first "
                f"(aws s3 mb s3://{bucket}), or drop --s3-bucket to keep uploads on local disk"
            ) from exc
        if code in {"403", "AccessDenied", "Forbidden"}:
            raise DemoStartupError(
                f"access to S3 bucket {bucket!r} {where} was denied: check the AWS credentials "
                "and the bucket policy"
            ) from exc
        raise DemoStartupError(
            f"S3 bucket {bucket!r} {where} cannot be used: {_one_line(exc, endpoint_url)}"
        ) from exc
    except BotoCoreError as exc:
        raise DemoStartupError(
            f"cannot reach S3 {where} for bucket {bucket!r}: {_one_line(exc, endpoint_url)} "
            "(check --s3-endpoint-url and the network)"
        ) from exc


async def check_s3(bucket: str, endpoint_url: str | None) -> None:
    """`check_s3_bucket` off the event loop, with a client made for the check."""
    try:
        client = make_s3_client(endpoint_url)
    except ImportError as exc:
        raise DemoStartupError(f"--s3-bucket needs boto3: {missing_module_message(exc)}") from exc
    try:
        await asyncio.to_thread(check_s3_bucket, client, bucket, endpoint_url)
    finally:
        client.close()


def local_url(host: str, port: int) -> str:
    """The URL to open for a server bound to `host`: a wildcard address becomes 127.0.0.1."""
    if listens_everywhere(host):
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def listens_everywhere(host: str) -> bool:
    """Whether `host` binds every interface, so other machines can reach the demo."""
    return host in _WILDCARD_HOSTS
