"""`chatkit-kit demo` on PostgreSQL with what the `demo` extra installs.

The extra's dependency closure must contain a PostgreSQL driver, and the demo must answer on a
plain `postgresql://` URL (no driver name), the way the README shows it. `nox -s demo_extra` runs
the same check in a virtual environment holding only the `demo` extra.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from ._process import Demo, done_items, free_port, message

pytestmark = pytest.mark.postgres

POSTGRES_DRIVERS = {"asyncpg", "psycopg"}


def extra_closure(distribution: str, extra: str) -> set[str]:
    """The distribution names `pip install "<distribution>[<extra>]"` pulls in (no versions)."""
    seen: set[str] = set()
    pending = [extra]
    done_extras: set[str] = set()
    requirements = metadata.requires(distribution) or []
    while pending:
        current = pending.pop()
        if current in done_extras:
            continue
        done_extras.add(current)
        for requirement in requirements:
            spec, _, marker = requirement.partition(";")
            if f'extra == "{current}"' not in marker.replace("'", '"'):
                continue
            match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", spec)
            assert match, requirement
            name, extras = match.group(1).lower(), match.group(2)
            if name == distribution:
                pending.extend(e.strip() for e in (extras or "").split(",") if e.strip())
            else:
                seen.add(name)
    return seen


def test_demo_extra_installs_a_postgres_driver_and_everything_the_demo_imports() -> None:
    closure = extra_closure("chatkit-kit", "demo")
    assert closure & POSTGRES_DRIVERS, closure
    assert {"sqlalchemy", "aiosqlite", "starlette", "uvicorn", "python-multipart"} <= closure


@pytest.fixture
async def demo_database(postgres_dsn: str) -> AsyncIterator[str]:
    """A fresh database of its own (the demo has no schema option); dropped afterwards."""
    name = f"chatkit_demo_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    parts = urlsplit(postgres_dsn)
    try:
        yield urlunsplit(parts._replace(scheme="postgresql", path=f"/{name}"))
    finally:
        admin = await asyncpg.connect(postgres_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_demo_answers_on_postgres_from_a_plain_url(workdir: Path, demo_database: str) -> None:
    assert demo_database.startswith("postgresql://")
    port = free_port()
    demo = Demo(workdir, port, "--database-url", demo_database)
    try:
        events = demo.stream({"type": "threads.create", "params": {"input": message("on pg")}})
        thread_id = events[0]["thread"]["id"]
        _user, assistant = done_items(events)
        assert 'You said: "on pg".' in assistant["content"][0]["text"]
    finally:
        output = demo.stop()
    assert f"database {demo_database}" in output  # no password in this URL: shown as given

    demo = Demo(workdir, port, "--database-url", demo_database)
    try:
        thread = demo.request({"type": "threads.get_by_id", "params": {"thread_id": thread_id}})
        assert [i["type"] for i in thread["items"]["data"]] == [
            "user_message",
            "assistant_message",
        ]
    finally:
        demo.stop()
    assert not (workdir / "chatkit-demo.db").exists()  # nothing went to the SQLite default
