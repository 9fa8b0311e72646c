"""The one error hierarchy: its shape, and the old import paths that must keep working."""

from __future__ import annotations

import pytest

from chatkit_kit import errors, stores
from chatkit_kit._install import install_command
from chatkit_kit.attachments import (
    AttachmentError,
    AttachmentPolicyError,
    AttachmentTooLargeError,
    InvalidUploadError,
)
from chatkit_kit.errors import (
    ChatKitKitError,
    DatabaseConfigurationError,
    DatabaseError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    MissingDependencyError,
    SchemaVersionError,
)
from chatkit_kit.stores import _schema


def test_the_tree() -> None:
    for cls in (MissingDependencyError, DatabaseError, AttachmentError):
        assert issubclass(cls, ChatKitKitError)
    for cls in (DatabaseUnavailableError, DatabaseTimeoutError, DatabaseConfigurationError):
        assert issubclass(cls, DatabaseError)
    assert issubclass(SchemaVersionError, DatabaseConfigurationError)
    # What generic handlers catch.
    assert issubclass(DatabaseUnavailableError, ConnectionError)
    assert issubclass(DatabaseTimeoutError, TimeoutError)
    assert issubclass(MissingDependencyError, ImportError)
    assert issubclass(SchemaVersionError, RuntimeError)  # as before
    assert issubclass(AttachmentPolicyError, ValueError)
    # Retry loops written for ConnectionError / TimeoutError never spin on a misconfiguration.
    for cls in (DatabaseConfigurationError, SchemaVersionError):
        assert not issubclass(cls, (ConnectionError, TimeoutError))
    assert not issubclass(DatabaseTimeoutError, ConnectionError)


def test_retry_and_applied_flags() -> None:
    assert DatabaseUnavailableError.retryable and DatabaseUnavailableError.may_have_applied
    assert DatabaseTimeoutError.retryable and not DatabaseTimeoutError.may_have_applied
    for cls in (DatabaseError, DatabaseConfigurationError, SchemaVersionError):
        assert not cls.retryable and not cls.may_have_applied


def test_the_docstring_draws_every_public_class() -> None:
    assert errors.__doc__ is not None
    for name in errors.__all__:
        assert name in errors.__doc__
    for cls in (AttachmentError, AttachmentTooLargeError, InvalidUploadError):
        assert cls.__name__ in errors.__doc__


def test_old_import_paths_keep_working() -> None:
    assert stores.DatabaseUnavailableError is DatabaseUnavailableError
    assert stores.SchemaVersionError is SchemaVersionError
    assert _schema.SchemaVersionError is SchemaVersionError
    assert stores.MAX_ID_LENGTH == stores.MAX_ID_BYTES == 512
    assert stores.MAX_OWNER_BYTES == 1024


def test_missing_dependency_names_the_extra() -> None:
    error = MissingDependencyError("boto3", "s3", "S3BlobStorage")
    assert error.name == "boto3" and error.extra == "s3"
    assert str(error) == (
        "S3BlobStorage needs 'boto3', which is not installed; "
        f"install it with: {install_command('s3')}"
    )
    # One command naming the extra once, even when the alternative is the same extra.
    same = MissingDependencyError("asyncmy", "mysql", "a mysql:// URL", alternative="mysql")
    assert str(same).count("mysql]") == 1 and str(same).count("pip install") == 1
    other = MissingDependencyError("asyncpg", "asyncpg", "a postgresql URL", alternative="psycopg")
    assert "the psycopg extra provides another driver" in str(other)
    assert str(other).count("pip install") == 1
    with pytest.raises(ImportError):
        raise error
