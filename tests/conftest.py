"""Shared test configuration: backend availability rules, the PostgreSQL DSN, the MariaDB URL,
and the shared fixtures of `tests/fixtures/` (registered once here)."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import pytest

pytest_plugins = ["tests.fixtures.s3", "tests.fixtures.servers"]
"""Fixtures every test package can request: `s3_endpoint`, `s3_client`, `bucket`, `serve`."""

POSTGRES_DSN = os.environ.get(
    "CHATKIT_KIT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
PGBOUNCER_DSN = os.environ.get("CHATKIT_KIT_TEST_PGBOUNCER_DSN")
"""PgBouncer (transaction pooling) in front of the test PostgreSQL; .ci/run starts one."""
MYSQL_URL = os.environ.get("CHATKIT_KIT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def backend_unavailable(message: str) -> None:
    """Skip a test whose backend is missing; under CI=true fail instead, so nothing is hidden."""
    if IN_CI:
        pytest.fail(f"{message} (CI=true: backend tests must run, not skip)", pytrace=False)
    pytest.skip(message)


def _reachable(dsn: str, default_port: int = 5432) -> bool:
    parts = urlsplit(dsn)
    try:
        address = (parts.hostname or "127.0.0.1", parts.port or default_port)
        with socket.create_connection(address, 2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """The DSN of a reachable PostgreSQL server; skips (or fails under CI) when there is none."""
    if not _reachable(POSTGRES_DSN):
        backend_unavailable(
            f"PostgreSQL is not reachable at {POSTGRES_DSN}: start a server or set "
            "CHATKIT_KIT_TEST_POSTGRES_DSN=postgresql://user@host:port/db to run these tests"
        )
    return POSTGRES_DSN


@pytest.fixture(scope="session")
def pgbouncer_dsn(postgres_dsn: str) -> str:
    """The DSN of PgBouncer in transaction pooling mode in front of `postgres_dsn`'s server."""
    if not PGBOUNCER_DSN:
        backend_unavailable(
            "CHATKIT_KIT_TEST_PGBOUNCER_DSN is not set: run PgBouncer (pool_mode = transaction) "
            "in front of the test PostgreSQL and set it, e.g. "
            "postgresql://postgres@127.0.0.1:6432/test (.ci/run does both)"
        )
    assert PGBOUNCER_DSN is not None
    if not _reachable(PGBOUNCER_DSN, default_port=6432):
        backend_unavailable(f"PgBouncer is not reachable at {PGBOUNCER_DSN}")
    return PGBOUNCER_DSN


@pytest.fixture(scope="session")
def mariadb_url() -> str:
    """A `mysql://` URL of a reachable MariaDB (or MySQL) server; skips (fails under CI) without.

    Tests never use the URL's database itself: they create databases of their own from it.
    """
    if not _reachable(MYSQL_URL, default_port=3306):
        backend_unavailable(
            f"MariaDB/MySQL is not reachable at {MYSQL_URL}: start a server or set "
            "CHATKIT_KIT_TEST_MYSQL_URL=mysql://user:password@host:port/db (a user that may "
            "create databases) to run these tests"
        )
    return MYSQL_URL


_ALLOWED_SKIP_REASONS = ("OPENAI_API_KEY", "not supported by this store")
"""Skips allowed even under CI: code paths that need a real model key (never faked), and
conformance rules a store declares or shows it does not support (a reported result of the
suite, e.g. the reopen rules on an in-memory store: no backend is left out)."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Under CI=true a skipped test is a failure: no backend may silently not run."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        if not any(allowed in reason for allowed in _ALLOWED_SKIP_REASONS):
            report.outcome = "failed"
            report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"
