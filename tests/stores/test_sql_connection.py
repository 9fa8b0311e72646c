"""The SQL stores when the PostgreSQL connection is lost and comes back."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from chatkit.types import ThreadMetadata

from chatkit_kit.stores import DatabaseUnavailableError
from tests.fixtures.context import Ctx

from .sql_support import Flavour


class TcpProxy:
    """A loopback TCP proxy to PostgreSQL that can be cut and restored, like a restarting server."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.frozen = False
        """While set, bytes in either direction are dropped and connections stay open: a
        network black hole (nothing answers, nothing is refused or reset)."""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every open connection."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await source.read(65536):
                if self.frozen:
                    continue
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


def _via(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


async def test_lost_connection_raises_then_the_store_recovers(pg_flavour: Flavour) -> None:
    assert pg_flavour.dsn is not None
    parts = urlsplit(pg_flavour.dsn)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    flavour = Flavour(pg_flavour.name, _via(pg_flavour.dsn, proxy.port), schema=pg_flavour.schema)
    store: Any = await flavour.make(owner=lambda ctx: f"proxy-{id(proxy)}")
    thread = ThreadMetadata(id="t", created_at=datetime(2026, 1, 1))
    ctx = Ctx("u")
    try:
        await store.save_thread(thread, ctx)
        await asyncio.gather(*(store.load_thread("t", ctx) for _ in range(3)))  # fill the pool

        await proxy.stop()  # the database goes away, pooled connections break
        with pytest.raises(DatabaseUnavailableError, match="the store reconnects"):
            await store.load_thread("t", ctx)
        with pytest.raises(DatabaseUnavailableError):
            await store.save_thread(thread, ctx)

        await proxy.start()  # and comes back on the same address
        assert await store.load_thread("t", ctx) == thread
        await store.save_thread(thread.model_copy(update={"title": "back"}), ctx)
        assert (await store.load_thread("t", ctx)).title == "back"
    finally:
        await store.close()
        with contextlib.suppress(AssertionError):
            await proxy.stop()
