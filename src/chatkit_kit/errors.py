"""The exceptions chatkit-kit raises, in one tree.

```text
ChatKitKitError                      root: every error chatkit-kit defines derives from it
├── MissingDependencyError           (also ImportError) an optional extra is not installed
├── DatabaseError                    a store's database call failed; translated from the driver
│   ├── DatabaseUnavailableError     (also ConnectionError) transient: retry may succeed
│   ├── DatabaseTimeoutError         (also TimeoutError) statement, lock or pool timeout
│   │   └── DeadlockError            the database rolled the call back as a deadlock victim
│   └── DatabaseConfigurationError   not retryable: fix the configuration or the database
│       └── SchemaVersionError       (also RuntimeError) tables missing, older or newer
├── DecryptionError                  (chatkit_kit.encryption) a payload cannot be decrypted here
│   ├── DataKeyDestroyedError        the owner's data key is gone (crypto-shredded)
│   └── EncryptedPayloadError        a store without encryption read an encrypted row
├── KeyProviderError                 the key provider (KEK, KMS) refused or could not be reached
├── AttachmentStorageError           the blob storage (S3) refused a call: fix its configuration
│   └── AttachmentStorageUnavailableError  (also ConnectionError) S3 unreachable: retry
└── AttachmentError                  (chatkit_kit.attachments) a client's upload broke a rule
    ├── AttachmentPolicyError        (also ValueError) size or type not allowed
    │   ├── AttachmentTooLargeError
    │   └── AttachmentTypeNotAllowedError
    ├── AttachmentVerificationError  stored bytes differ from what was declared
    └── InvalidUploadError           malformed or truncated upload body
```

What each error says about the call that raised it:

| Error | May the call have been applied? | Retry? |
| --- | --- | --- |
| `DatabaseUnavailableError` | Yes (the connection broke, maybe after the write) | Yes |
| `DatabaseTimeoutError` | No (cancelled and rolled back); client-side timeout: yes | Yes |
| `DeadlockError` | No (the transaction was rolled back; the SQL stores already retried it) | Yes |
| `DatabaseConfigurationError` | No | No: fix the URL, role, grants or schema |
| `SchemaVersionError` | No | No: run `migrate()` or upgrade chatkit-kit |
| other `DatabaseError` | No (the database rejected the statement) | Not as is |

Every store write is idempotent (an upsert or a delete by key), so retrying one after a
`DatabaseUnavailableError` is safe. Store methods never let a driver exception (asyncpg,
psycopg, SQLAlchemy, sqlite3/aiosqlite) escape: each SQL backend translates them in one place,
and the original exception stays available as `__cause__`.

Not in this tree, on purpose: the errors of the ChatKit `Store` contract itself. Unknown rows
raise upstream's `chatkit.store.NotFoundError`, and bad arguments raise `ValueError` or
`TypeError` (an id that cannot be stored, a page limit below 1), as every store and
`ChatKitServer` expect. Attachment errors join the root because they are chatkit-kit's own;
they also derive from the endpoint's client-error class, which maps them to HTTP 4xx.
"""

from __future__ import annotations

from typing import ClassVar

from ._install import install_command

__all__ = [
    "AttachmentStorageError",
    "AttachmentStorageUnavailableError",
    "ChatKitKitError",
    "DataKeyDestroyedError",
    "DatabaseConfigurationError",
    "DatabaseError",
    "DatabaseTimeoutError",
    "DatabaseUnavailableError",
    "DeadlockError",
    "DecryptionError",
    "EncryptedPayloadError",
    "KeyProviderError",
    "MissingDependencyError",
    "SchemaVersionError",
]


class ChatKitKitError(Exception):
    """Root of every exception chatkit-kit defines."""


class MissingDependencyError(ChatKitKitError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it.

    `extra` is the chatkit-kit extra, `module` the missing import. The message ends with the one
    pip command that installs the extra where this chatkit-kit came from (the clone's path or
    the wheel's, as pip recorded it), e.g. `pip install "/src/chatkit-kit[mysql]"`. An
    `alternative` extra that also provides a driver is mentioned by name only.
    """

    def __init__(
        self, module: str, extra: str, what: str | None = None, *, alternative: str | None = None
    ) -> None:
        self.module = module
        self.extra = extra
        needed_by = what or "this part of chatkit-kit"
        other = ""
        if alternative is not None and alternative != extra:
            other = f" (the {alternative} extra provides another driver)"
        super().__init__(
            f"{needed_by} needs {module!r}, which is not installed{other}; install it with: "
            f"{install_command(extra)}",
            name=module,
        )


class DatabaseError(ChatKitKitError):
    """A store's database call failed; the driver's exception is the `__cause__`.

    Raised as is (not as a subclass) when the database rejected a statement for a reason none of
    the subclasses covers; the statement was rolled back, so the call was not applied.
    """

    retryable: ClassVar[bool] = False
    """Whether retrying the same call later may succeed."""
    may_have_applied: bool = False
    """Whether the call's write may have taken effect despite the error. Set per class, and
    per error where the class's default does not hold: a client-side statement timeout
    (`DatabaseTimeoutError`) and a MySQL/MariaDB migration failing after part of its DDL
    committed (which DDL does implicitly) say True."""
    code: str | None = None
    """The database's error code (a SQLSTATE, a MySQL error number) when it gave one."""


class DatabaseUnavailableError(DatabaseError, ConnectionError):
    """The database could not be reached, or the connection broke during the call.

    Connection refused or lost, the server shutting down or restarting, too many connections,
    a failover (the server became read-only), or a pooled connection failing on release. The
    call may or may not have been applied: a write may have committed before the connection
    broke. Store writes are idempotent, so retry with backoff. The store keeps working once the
    database is reachable again; there is no need to recreate it.
    """

    retryable = True
    may_have_applied = True


class DatabaseTimeoutError(DatabaseError, TimeoutError):
    """A statement or lock timeout fired, or no pooled connection became free in time.

    The statement was cancelled and rolled back, so the call was not applied. A retry may
    succeed once the load or the lock holder is gone. The exception: when the store's own
    client-side `statement_timeout` fired, the database never answered, so a write may have
    been applied; that error says `may_have_applied=True`.
    """

    retryable = True


class DeadlockError(DatabaseTimeoutError):
    """The database picked the call's transaction as a deadlock victim and rolled it back.

    The call was not applied; running it again is safe. The SQL stores retry it a few times
    before raising this: MySQL/MariaDB deadlocks (1213), PostgreSQL deadlocks (SQLSTATE 40P01)
    and serialization failures (40001).
    """


class DatabaseConfigurationError(DatabaseError):
    """The database is reachable but cannot serve this store as configured; retrying will not help.

    A missing database, a role that does not exist or a wrong password, missing privileges, or a
    missing schema or table. Not a `ConnectionError`, so retry loops do not spin on it. The call
    was not applied.
    """


class SchemaVersionError(DatabaseConfigurationError, RuntimeError):
    """The store's tables are missing, or not at the schema version this release works with.

    Run `await store.migrate()` (or `chatkit-kit migrate DATABASE_URL`) for missing or older
    tables; upgrade chatkit-kit for newer ones. The call was not applied.
    """


class DecryptionError(ChatKitKitError):
    """An encrypted payload does not decrypt for the row it was read from: it was copied from
    another owner, thread or row, altered, or written under a key this store cannot find.

    Never retried and never turned into garbage: the row is not returned. `owner` and `row_id`
    name the row as read (both are stored in clear).
    """

    def __init__(self, message: str, *, owner: str | None = None, row_id: str | None = None):
        super().__init__(message)
        self.owner = owner
        self.row_id = row_id


class DataKeyDestroyedError(DecryptionError):
    """The owner's data key no longer exists (erased by `erase_owner`: crypto-shredding), so
    their encrypted rows, e.g. in a restored backup, can never be read again."""


class EncryptedPayloadError(DecryptionError):
    """A store built without encryption (the default `JSONCodec`) read a row that an
    `EncryptedStore` encrypted: build the store with `codec=EnvelopeCodec()` and wrap it in
    `EncryptedStore` with the key provider. `kind` is the row's kind (thread, item, attachment);
    `owner` and `row_id` name it (from the envelope's clear header, when it can be read)."""

    def __init__(
        self,
        message: str,
        *,
        owner: str | None = None,
        row_id: str | None = None,
        kind: str | None = None,
    ):
        super().__init__(message, owner=owner, row_id=row_id)
        self.kind = kind


class KeyProviderError(ChatKitKitError):
    """The key provider could not wrap or unwrap a data key: an unknown or disabled
    key-encryption key, access denied, or the provider (AWS KMS) unreachable. The cause is the
    `__cause__`; nothing was written."""


class AttachmentStorageError(ChatKitKitError):
    """The attachment blob storage (an S3 bucket) refused a call: access denied, a missing
    bucket, a bad request. Retrying will not help; the storage's exception is the `__cause__`.
    The endpoint answers it with a 500."""

    retryable: ClassVar[bool] = False
    """Whether retrying the same call later may succeed."""


class AttachmentStorageUnavailableError(AttachmentStorageError, ConnectionError):
    """The attachment blob storage could not be reached or failed transiently: connection
    refused or reset, a connect or read timeout, an S3 5xx or throttling answer.

    Retry with backoff; the endpoint answers it with 503 and `Retry-After`, like a database
    outage. Nothing was changed on our side: a failed upload leaves no attachment, a failed
    delete or sweep keeps the attachment's row (so the next attempt finds its bytes again).
    """

    retryable = True
