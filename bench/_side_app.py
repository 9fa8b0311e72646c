"""The six servers bench/side_by_side.py compares, one per SIDE_VARIANT, all answering the same mix.

    uvicorn --factory _side_app:create --app-dir bench --workers 2

SIDE_VARIANT:
- floor: upstream `ChatKitServer` on a dict store without I/O, behind a hand-written Starlette
  handler (what ChatKit itself costs); uploads are read and recorded, not written anywhere;
- docs_pg: a PostgreSQL store written the way upstream's docs describe one (asyncpg, a JSONB
  document per row), behind the same hand-written handler, uploads written to UPLOAD_DIR;
- asyncpg, sqlalchemy_pg, sqlalchemy_sqlite, memory: chatkit-kit's store of that name behind
  `chatkit_routes`, with `DirectUploadAttachmentStore` on `LocalBlobStorage(UPLOAD_DIR)`.

The hand-written handler parses each request once with a module-level adapter and routes it the
way `ChatKitServer.process` does (upstream's `process` builds a new adapter per request, most of
a cheap request's CPU), so the comparison is about stores and endpoints, not that parse.
Every variant streams the same answer: LOAD_DELTAS text deltas (default 8).

Environment: SIDE_VARIANT, DATABASE_URL (PostgreSQL), SQLITE_PATH, UPLOAD_DIR, PUBLIC_URL,
SIDE_SCHEMA, LOAD_POOL_SIZE (connections per worker, default 5: every pool holds at most that
many), LOAD_MAX_OVERFLOW (SQLAlchemy's `max_overflow` on top, default 0: an overflow connection
is opened for a burst and closed after it).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

import asyncpg  # noqa: E402
from _streaming import StreamingResponder  # noqa: E402
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult  # noqa: E402
from chatkit.store import NotFoundError, Store, default_generate_id  # noqa: E402
from chatkit.types import (  # noqa: E402
    Attachment,
    ChatKitReq,
    FileAttachment,
    Page,
    ThreadItem,
    ThreadMetadata,
    is_streaming_req,
)
from pydantic import TypeAdapter, ValidationError  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.exceptions import HTTPException  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from chatkit_kit.asgi import chatkit_routes  # noqa: E402
from chatkit_kit.attachments import LocalBlobStorage, StoreWithAttachments  # noqa: E402
from chatkit_kit.attachments.direct import DirectUploadAttachmentStore  # noqa: E402
from chatkit_kit.stores import AsyncpgStore, MemoryStore, SQLAlchemyStore  # noqa: E402

VARIANTS = ("floor", "docs_pg", "asyncpg", "sqlalchemy_pg", "sqlalchemy_sqlite", "memory")


@dataclass(frozen=True)
class Ctx:
    user_id: str


async def context_factory(request: Request) -> Ctx:
    user = request.headers.get("x-user-id")
    if not user:
        raise HTTPException(401, "missing x-user-id")
    return Ctx(user)


class StreamingServer(StreamingResponder, ChatKitServer[Any]):
    """Upstream's server, answering with a streamed message of LOAD_DELTAS text deltas."""


# ---------------------------------------------------------------------------------------------
# (a) the no-I/O dict store


class DictStore(Store[Ctx]):
    """Threads, items and attachments in dicts; no checks beyond what ChatKit needs."""

    def __init__(self) -> None:
        self.threads: dict[str, ThreadMetadata] = {}
        # Each user's thread ids in the order they were created (dicts keep insertion order),
        # so that threads.list costs a page, not a sort of every thread ever made.
        self.owned: dict[str, dict[str, None]] = {}
        self.items: dict[str, list[ThreadItem]] = {}
        self.attachments: dict[str, Attachment] = {}

    async def load_thread(self, thread_id: str, context: Ctx) -> ThreadMetadata:
        try:
            return self.threads[thread_id].model_copy()
        except KeyError:
            raise NotFoundError(thread_id) from None

    async def save_thread(self, thread: ThreadMetadata, context: Ctx) -> None:
        self.threads[thread.id] = thread.model_copy()
        self.owned.setdefault(context.user_id, {})[thread.id] = None

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Ctx
    ) -> Page[ThreadItem]:
        items = list(self.items.get(thread_id, []))
        if order == "desc":
            items.reverse()
        if after is not None:
            ids = [item.id for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = items[:limit]
        return Page(data=page, has_more=len(items) > limit, after=page[-1].id if page else None)

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: Ctx
    ) -> Page[ThreadMetadata]:
        owned = self.owned.get(context.user_id, {})
        ids: Iterable[str] = reversed(owned) if order == "desc" else owned
        if after is not None:
            ids = itertools.dropwhile(lambda i: i != after, ids)
            next(iter(ids), None)  # dropwhile stops on `after` itself: skip it too
        picked = [self.threads[i] for i in itertools.islice(ids, limit + 1)]
        page = picked[:limit]
        return Page(data=page, has_more=len(picked) > limit, after=page[-1].id if page else None)

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Ctx) -> None:
        self.items.setdefault(thread_id, []).append(item)

    async def save_item(self, thread_id: str, item: ThreadItem, context: Ctx) -> None:
        items = self.items.setdefault(thread_id, [])
        for n, existing in enumerate(items):
            if existing.id == item.id:
                items[n] = item
                return
        items.append(item)

    async def load_item(self, thread_id: str, item_id: str, context: Ctx) -> ThreadItem:
        for item in self.items.get(thread_id, []):
            if item.id == item_id:
                return item
        raise NotFoundError(item_id)

    async def delete_thread(self, thread_id: str, context: Ctx) -> None:
        self.threads.pop(thread_id, None)
        self.owned.get(context.user_id, {}).pop(thread_id, None)
        self.items.pop(thread_id, None)

    async def delete_thread_item(self, thread_id: str, item_id: str, context: Ctx) -> None:
        self.items[thread_id] = [i for i in self.items.get(thread_id, []) if i.id != item_id]

    async def save_attachment(self, attachment: Attachment, context: Ctx) -> None:
        self.attachments[attachment.id] = attachment

    async def load_attachment(self, attachment_id: str, context: Ctx) -> Attachment:
        try:
            return self.attachments[attachment_id]
        except KeyError:
            raise NotFoundError(attachment_id) from None

    async def delete_attachment(self, attachment_id: str, context: Ctx) -> None:
        self.attachments.pop(attachment_id, None)


# ---------------------------------------------------------------------------------------------
# (b) a PostgreSQL store as upstream's docs describe one: a JSON document per row

_THREAD = TypeAdapter(ThreadMetadata)
_ITEM: TypeAdapter[Any] = TypeAdapter(ThreadItem)
_T = TypeVar("_T")
_ATTACHMENT: TypeAdapter[Any] = TypeAdapter(Attachment)

DOCS_SCHEMA = """
CREATE TABLE IF NOT EXISTS {s}.threads (
    id text PRIMARY KEY, user_id text NOT NULL, created_at timestamptz NOT NULL, data jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS threads_user ON {s}.threads (user_id, created_at);
CREATE TABLE IF NOT EXISTS {s}.items (
    id text PRIMARY KEY, thread_id text NOT NULL, user_id text NOT NULL,
    created_at timestamptz NOT NULL, seq bigserial, data jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS items_thread ON {s}.items (thread_id, seq);
CREATE TABLE IF NOT EXISTS {s}.attachments (
    id text PRIMARY KEY, user_id text NOT NULL, data jsonb NOT NULL
);
"""


class DocsPostgresStore(Store[Ctx]):
    """Every call one statement on an asyncpg pool; rows hold the model as JSON."""

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.s = schema

    async def _load(self, adapter: TypeAdapter[_T], table: str, where: str, *args: Any) -> _T:
        """The one `table` row matching `where`; NotFoundError names the first argument."""
        row = await self.pool.fetchrow(f"SELECT data FROM {self.s}.{table} WHERE {where}", *args)
        if row is None:
            raise NotFoundError(args[0])
        return adapter.validate_json(row["data"])

    async def load_thread(self, thread_id: str, context: Ctx) -> ThreadMetadata:
        where = "id = $1 AND user_id = $2"
        return await self._load(_THREAD, "threads", where, thread_id, context.user_id)

    async def _upsert(self, table: str, columns: str, *values: Any) -> None:
        """Insert a row of `columns` (the last one `data`), or replace the `data` of its id."""
        placeholders = ", ".join(f"${n}" for n in range(1, len(values) + 1))
        await self.pool.execute(
            f"INSERT INTO {self.s}.{table} ({columns}) VALUES ({placeholders})"
            " ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data",
            *values,
        )

    async def save_thread(self, thread: ThreadMetadata, context: Ctx) -> None:
        columns = "id, user_id, created_at, data"
        values = (thread.id, context.user_id, thread.created_at, thread.model_dump_json())
        await self._upsert("threads", columns, *values)

    async def _page(
        self,
        table: str,
        where: str,
        sort: str,
        args: list[Any],
        after: str | None,
        limit: int,
        order: str,
        adapter: TypeAdapter[_T],
    ) -> Page[_T]:
        """One page of `table` rows matching `where` (on `args`), by `sort`, after row `after`."""
        op, direction = (">", "ASC") if order == "asc" else ("<", "DESC")
        cursor = ""
        args = [*args, limit + 1]
        limit_parameter = len(args)
        if after is not None:
            args.append(after)
            cursor = (
                f" AND {sort} {op} (SELECT {sort} FROM {self.s}.{table} WHERE id = ${len(args)})"
            )
        rows = await self.pool.fetch(
            f"SELECT id, data FROM {self.s}.{table} WHERE {where}{cursor}"
            f" ORDER BY {sort} {direction} LIMIT ${limit_parameter}",
            *args,
        )
        data = [adapter.validate_json(row["data"]) for row in rows[:limit]]
        return Page(data=data, has_more=len(rows) > limit, after=data[-1].id if data else None)

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: Ctx
    ) -> Page[ThreadItem]:
        where = "thread_id = $1 AND user_id = $2"
        args = [thread_id, context.user_id]
        return await self._page("items", where, "seq", args, after, limit, order, _ITEM)

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: Ctx
    ) -> Page[ThreadMetadata]:
        args = [context.user_id]
        return await self._page(
            "threads", "user_id = $1", "created_at", args, after, limit, order, _THREAD
        )

    async def add_thread_item(self, thread_id: str, item: ThreadItem, context: Ctx) -> None:
        await self.save_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: Ctx) -> None:
        columns = "id, thread_id, user_id, created_at, data"
        values = (item.id, thread_id, context.user_id, item.created_at, item.model_dump_json())
        await self._upsert("items", columns, *values)

    async def load_item(self, thread_id: str, item_id: str, context: Ctx) -> ThreadItem:
        where = "id = $1 AND thread_id = $2 AND user_id = $3"
        item: ThreadItem = await self._load(
            _ITEM, "items", where, item_id, thread_id, context.user_id
        )
        return item

    async def delete_thread(self, thread_id: str, context: Ctx) -> None:
        await self.pool.execute(
            f"WITH i AS (DELETE FROM {self.s}.items WHERE thread_id = $1 AND user_id = $2)"
            f" DELETE FROM {self.s}.threads WHERE id = $1 AND user_id = $2",
            thread_id,
            context.user_id,
        )

    async def delete_thread_item(self, thread_id: str, item_id: str, context: Ctx) -> None:
        await self.pool.execute(
            f"DELETE FROM {self.s}.items WHERE id = $1 AND thread_id = $2 AND user_id = $3",
            item_id,
            thread_id,
            context.user_id,
        )

    async def save_attachment(self, attachment: Attachment, context: Ctx) -> None:
        values = (attachment.id, context.user_id, attachment.model_dump_json())
        await self._upsert("attachments", "id, user_id, data", *values)

    async def load_attachment(self, attachment_id: str, context: Ctx) -> Attachment:
        where = "id = $1 AND user_id = $2"
        attachment: Attachment = await self._load(
            _ATTACHMENT, "attachments", where, attachment_id, context.user_id
        )
        return attachment

    async def delete_attachment(self, attachment_id: str, context: Ctx) -> None:
        await self.pool.execute(
            f"DELETE FROM {self.s}.attachments WHERE id = $1 AND user_id = $2",
            attachment_id,
            context.user_id,
        )


# ---------------------------------------------------------------------------------------------
# The hand-written handler of (a) and (b)

_REQUEST = TypeAdapter(ChatKitReq)


def handwritten_routes(server: ChatKitServer[Ctx], upload_dir: str | None) -> list[Route]:
    async def chatkit(request: Request) -> Response:
        context = await context_factory(request)
        try:
            parsed = _REQUEST.validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        result: StreamingResult | NonStreamingResult
        if is_streaming_req(parsed):
            result = StreamingResult(server._process_streaming(parsed, context))
            return StreamingResponse(result, media_type="text/event-stream")
        result = NonStreamingResult(await server._process_non_streaming(parsed, context))
        return Response(result.json, media_type="application/json")

    async def upload(request: Request) -> Response:
        context = await context_factory(request)
        form = await request.form()
        file = form["file"]
        assert not isinstance(file, str)
        data = await file.read()
        attachment = FileAttachment(
            id=default_generate_id("attachment"),
            name=file.filename or "upload",
            mime_type=file.content_type or "application/octet-stream",
        )
        if upload_dir is not None:
            path = Path(upload_dir) / attachment.id
            await asyncio.to_thread(path.write_bytes, data)
        await server.store.save_attachment(attachment, context)
        return Response(attachment.model_dump_json(), media_type="application/json")

    return [
        Route("/chatkit", chatkit, methods=["POST"]),
        Route("/chatkit/attachments/upload", upload, methods=["POST"]),
    ]


def create() -> Starlette:
    variant = os.environ["SIDE_VARIANT"]
    if variant not in VARIANTS:
        raise SystemExit(f"SIDE_VARIANT must be one of {VARIANTS}, got {variant!r}")
    upload_dir = os.environ["UPLOAD_DIR"]
    public_url = os.environ["PUBLIC_URL"]
    pool_size = int(os.environ.get("LOAD_POOL_SIZE", "5"))
    max_overflow = int(os.environ.get("LOAD_MAX_OVERFLOW", "0"))
    dsn = os.environ.get("DATABASE_URL", "")
    schema = os.environ.get("SIDE_SCHEMA", "public")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        closers: list[Any] = []
        if variant == "floor":
            app.router.routes.extend(handwritten_routes(StreamingServer(DictStore()), None))
        elif variant == "docs_pg":
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=pool_size)
            closers.append(pool.close)
            store = DocsPostgresStore(pool, schema)
            app.router.routes.extend(handwritten_routes(StreamingServer(store), upload_dir))
        else:
            ours: Any
            if variant == "asyncpg":
                ours = await AsyncpgStore.connect(
                    dsn, schema=schema, min_size=1, max_size=pool_size
                )
            elif variant == "sqlalchemy_pg":
                url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
                ours = SQLAlchemyStore.from_url(
                    url, schema=schema, pool_size=pool_size, max_overflow=max_overflow
                )
            elif variant == "sqlalchemy_sqlite":
                sqlite_url = f"sqlite+aiosqlite:///{os.environ['SQLITE_PATH']}"
                ours = SQLAlchemyStore.from_url(
                    sqlite_url, pool_size=pool_size, max_overflow=max_overflow
                )
            else:
                ours = MemoryStore()
            if hasattr(ours, "close"):
                closers.append(ours.close)
            uploads = DirectUploadAttachmentStore(
                ours, LocalBlobStorage(upload_dir), base_url=f"{public_url}/chatkit"
            )
            server = StreamingServer(StoreWithAttachments(ours, uploads), uploads)
            app.router.routes.extend(chatkit_routes(server, context_factory, uploads=uploads))
        yield
        for close in closers:
            await close()

    return Starlette(lifespan=lifespan)


async def prepare(variant: str, dsn: str, schema: str, sqlite_path: str) -> None:
    """Create the variant's tables (before its workers start)."""
    if variant == "docs_pg":
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(DOCS_SCHEMA.format(s=schema))
        finally:
            await conn.close()
    elif variant == "asyncpg":
        async with await AsyncpgStore.connect(dsn, schema=schema, min_size=1, max_size=1) as s:
            await s.migrate()
    elif variant == "sqlalchemy_pg":
        url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
        store: SQLAlchemyStore[Any] = SQLAlchemyStore.from_url(url, schema=schema)
        try:
            await store.migrate()
        finally:
            await store.close()
    elif variant == "sqlalchemy_sqlite":
        store = SQLAlchemyStore.from_url(f"sqlite+aiosqlite:///{sqlite_path}")
        try:
            await store.migrate()
        finally:
            await store.close()
