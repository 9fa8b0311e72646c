"""Database round trips per ChatKit request, for every SQL store: a figure free of machine noise.

Real `ChatKitServer` requests (threads.create and threads.add_user_message with a streamed
response, items.list, threads.list, threads.delete, attachments.create and attachments.delete)
run through each store. Two things are counted per request, in steady state (after one warm-up
round, so the schema check and pool connections are behind us):

- store calls: the `Store` methods upstream's server (and the attachment backend) call;
- round trips: for PostgreSQL, the client->server synchronisation points on the wire (simple
  `Query` and extended-protocol `Sync` messages), counted by a loopback proxy in front of the
  server, so pool resets, BEGIN/COMMIT and prepare steps all show; for SQLite, the statements
  the sqlite3 connection executed (its trace callback), BEGIN and COMMIT included.

The target is one round trip per store call. Run `python bench/roundtrips.py` (needs PostgreSQL
at CHATKIT_KIT_TEST_POSTGRES_DSN, default postgresql://postgres@127.0.0.1:5432/test; works in a
fresh schema it drops at the end); `--json` prints the counts as JSON instead of a table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import struct
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import psycopg
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ThreadItemDoneEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)
from sqlalchemy import event

try:  # SQLAlchemy 2.1; 2.0 (Python 3.10) calls it await_only
    from sqlalchemy.util.concurrency import await_
except ImportError:
    from sqlalchemy.util import await_only as await_  # type: ignore[no-redef,attr-defined,unused-ignore]

from chatkit_kit.attachments import StoreWithAttachments
from chatkit_kit.attachments.s3 import S3AttachmentStore
from chatkit_kit.stores.asyncpg import AsyncpgStore
from chatkit_kit.stores.sqlalchemy import SQLAlchemyStore

DSN = os.environ.get("CHATKIT_KIT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")

STORE_METHODS = (
    "load_thread",
    "save_thread",
    "load_thread_items",
    "add_thread_item",
    "save_item",
    "load_item",
    "delete_thread_item",
    "load_threads",
    "delete_thread",
    "save_attachment",
    "load_attachment",
    "delete_attachment",
    # AttachmentIndex, for the attachment backend's cascade on thread delete
    "list_thread_attachments",
)

REQUESTS = (
    "threads.create",
    "threads.add_user_message",
    "items.list",
    "items.list (after)",
    "threads.list",
    "attachments.create",
    "attachments.delete",
    "threads.delete",
)

FLAVOURS = ("sqlite", "sqlalchemy+asyncpg", "sqlalchemy+psycopg", "asyncpg")
TITLES = {
    "sqlite": "SQLite stmts",
    "sqlalchemy+asyncpg": "SA+asyncpg",
    "sqlalchemy+psycopg": "SA+psycopg",
    "asyncpg": "AsyncpgStore",
}


@dataclass
class Ctx:
    user_id: str


class WireCounter:
    """A loopback proxy to PostgreSQL counting the frontend's `Query` and `Sync` messages."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.round_trips = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def dsn(self, dsn: str) -> str:
        parts = urlsplit(dsn)
        user = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=f"{user[0]}@{host}" if len(user) == 2 else host))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        for task in (
            asyncio.ensure_future(self._frontend(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _frontend(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError, asyncio.IncompleteReadError):
            # Untyped packets first (SSLRequest, GSSENCRequest, then the StartupMessage).
            while True:
                head = await source.readexactly(4)
                (length,) = struct.unpack("!i", head)
                body = await source.readexactly(length - 4)
                sink.write(head + body)
                await sink.drain()
                code = struct.unpack("!i", body[:4])[0]
                if code not in (80877103, 80877104):  # SSL / GSSENC request: answered 'N'
                    break
            while True:
                kind = await source.readexactly(1)
                head = await source.readexactly(4)
                (length,) = struct.unpack("!i", head)
                body = await source.readexactly(length - 4)
                if kind in (b"Q", b"S"):
                    self.round_trips += 1
                sink.write(kind + head + body)
                await sink.drain()
        sink.transport.abort()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


class EchoServer(ChatKitServer[Ctx]):
    """Answers every user message with one assistant message, like the examples."""

    async def respond(
        self, thread: ThreadMetadata, item: UserMessageItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        yield ThreadItemDoneEvent(
            item=AssistantMessageItem(
                id=self.store.generate_item_id("message", thread, context),
                thread_id=thread.id,
                created_at=datetime.now(),
                content=[AssistantMessageContent(text="ok")],
            )
        )


def count_store_calls(store: Any, counter: list[int]) -> None:
    """Count every `Store` method call on this instance (instance attributes shadow methods)."""
    for name in STORE_METHODS:
        method = getattr(store, name)

        def wrap(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
            async def counted(*args: Any, **kwargs: Any) -> Any:
                counter[0] += 1
                return await method(*args, **kwargs)

            return counted

        setattr(store, name, wrap(method))


async def request(server: EchoServer, body: dict[str, Any], ctx: Ctx) -> Any:
    result = await server.process(json.dumps(body).encode(), ctx)
    if isinstance(result, StreamingResult):
        events = [chunk async for chunk in result]
        return events
    return json.loads(result.json)


def _user_input(text: str) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [],
        "inference_options": {},
    }


async def one_round(
    server: EchoServer, ctx: Ctx, measure: Callable[[], tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """Every request once; returns request -> (store calls, round trips) it cost."""
    counts: dict[str, tuple[int, int]] = {}

    async def run(name: str, body: dict[str, Any]) -> Any:
        before = measure()
        result = await request(server, body, ctx)
        after = measure()
        counts[name] = (after[0] - before[0], after[1] - before[1])
        return result

    events = await run(
        "threads.create", {"type": "threads.create", "params": {"input": _user_input("hello")}}
    )
    created = json.loads(events[0].removeprefix(b"data: "))
    thread_id = created["thread"]["id"]
    await run(
        "threads.add_user_message",
        {
            "type": "threads.add_user_message",
            "params": {"thread_id": thread_id, "input": _user_input("again")},
        },
    )
    page = await run(
        "items.list",
        {"type": "items.list", "params": {"thread_id": thread_id, "limit": 2, "order": "asc"}},
    )
    await run(
        "items.list (after)",
        {
            "type": "items.list",
            "params": {"thread_id": thread_id, "limit": 2, "order": "asc", "after": page["after"]},
        },
    )
    await run("threads.list", {"type": "threads.list", "params": {"limit": 20, "order": "desc"}})
    attachment = await run(
        "attachments.create",
        {
            "type": "attachments.create",
            "params": {"name": "a.txt", "size": 3, "mime_type": "text/plain"},
        },
    )
    await run(
        "attachments.delete",
        {"type": "attachments.delete", "params": {"attachment_id": attachment["id"]}},
    )
    await run("threads.delete", {"type": "threads.delete", "params": {"thread_id": thread_id}})
    return counts


async def make_store(flavour: str, dsn: str, schema: str, sqlite_path: Path) -> Any:
    if flavour == "sqlite":
        return SQLAlchemyStore.from_url(f"sqlite+aiosqlite:///{sqlite_path}")
    if flavour == "asyncpg":
        return await AsyncpgStore.connect(dsn, schema=schema, min_size=1, max_size=2)
    driver = flavour.split("+", 1)[1]
    url = dsn.replace("postgresql://", f"postgresql+{driver}://", 1)
    return SQLAlchemyStore.from_url(url, schema=schema, pool_size=2)


def trace_sqlite(store: SQLAlchemyStore[Any], counter: list[int]) -> None:
    """Count every statement the sqlite3 connections of `store` execute."""

    def trace(_statement: str) -> None:
        counter[0] += 1

    @event.listens_for(store.engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        await_(dbapi_connection.driver_connection.set_trace_callback(trace))


@contextlib.contextmanager
def s3_bucket() -> Iterator[tuple[Any, str]]:
    """A moto S3 server on loopback (real HTTP) with one bucket: the two-phase upload backend."""
    import boto3
    import moto.server
    from botocore.config import Config

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per S3 request
    server = moto.server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(signature_version="s3v4", request_checksum_calculation="when_required"),
        )
        client.create_bucket(Bucket="bench")
        yield client, "bench"
    finally:
        server.stop()


async def measure_flavour(
    flavour: str, dsn: str, schema: str, workdir: Path, rounds: int, s3: tuple[Any, str]
) -> dict[str, tuple[int, int]]:
    """request -> (store calls, round trips) of the last of `rounds` steady-state rounds."""
    wire: WireCounter | None = None
    sql_counter = [0]
    if flavour != "sqlite":
        parts = urlsplit(dsn)
        wire = WireCounter(parts.hostname or "127.0.0.1", parts.port or 5432)
        await wire.start()
        dsn = wire.dsn(dsn)
    store = await make_store(flavour, dsn, schema, workdir / f"{flavour}.db")
    if flavour == "sqlite":
        trace_sqlite(store, sql_counter)
    calls = [0]
    try:
        await store.migrate()
        uploads = S3AttachmentStore(store, client=s3[0], bucket=s3[1], delete_with_thread=True)
        count_store_calls(store, calls)  # the calls reaching the store, under the composition
        server = EchoServer(StoreWithAttachments(store, uploads), uploads)
        ctx = Ctx(f"user-{uuid.uuid4().hex[:6]}")

        def measure() -> tuple[int, int]:
            trips = wire.round_trips if wire is not None else sql_counter[0]
            return calls[0], trips

        await one_round(server, ctx, measure)  # warm-up: schema check, pool connections
        counts: dict[str, tuple[int, int]] = {}
        for _ in range(rounds):
            counts = await one_round(server, ctx, measure)
        return counts
    finally:
        await store.close()
        if wire is not None:
            await wire.stop()


async def measure_all(dsn: str, rounds: int = 2) -> dict[str, dict[str, tuple[int, int]]]:
    schema = f"ckt_rt_{uuid.uuid4().hex[:8]}"
    results: dict[str, dict[str, tuple[int, int]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp, s3_bucket() as s3:
            for flavour in FLAVOURS:
                results[flavour] = await measure_flavour(
                    flavour, dsn, schema, Path(tmp), rounds, s3
                )
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return results


def table(results: dict[str, dict[str, tuple[int, int]]]) -> str:
    flavours = list(results)
    header = f"{'request':<26} {'store calls':>11} " + " ".join(
        f"{TITLES[f]:>13}" for f in flavours
    )
    lines = [header, "-" * len(header)]
    for name in REQUESTS:
        calls = results[flavours[0]][name][0]
        cells = " ".join(f"{results[f][name][1]:>13}" for f in flavours)
        lines.append(f"{name:<26} {calls:>11} {cells}")
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DSN, help="PostgreSQL DSN (postgresql://...)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")
    args = parser.parse_args(argv)
    results = await measure_all(args.dsn)
    if args.json:
        plain = {f: {r: list(c) for r, c in counts.items()} for f, counts in results.items()}
        print(json.dumps(plain))
    else:
        print("Round trips per ChatKit request (steady state; PostgreSQL: Query/Sync messages)")
        print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
