"""Starlette + AsyncpgStore + direct uploads to a local directory.

Run: DATABASE_URL=postgresql://user@host/db UPLOAD_DIR=./uploads \
     uvicorn examples.asyncpg_direct.app:app --port 8000
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatkit.server import ChatKitServer
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ThreadItemDoneEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request

from chatkit_kit.asgi import chatkit_routes
from chatkit_kit.attachments import LocalBlobStorage, StoreWithAttachments
from chatkit_kit.attachments.direct import DirectUploadAttachmentStore
from chatkit_kit.stores import AsyncpgStore


@dataclass(frozen=True)
class Ctx:
    user_id: str


async def context_factory(request: Request) -> Ctx:
    user = request.headers.get("x-user-id")  # stand-in for your real authentication
    if not user:
        raise HTTPException(401, "missing x-user-id")
    return Ctx(user)


class Server(ChatKitServer[Ctx]):
    async def respond(
        self, thread: ThreadMetadata, item: UserMessageItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        names = [a.name for a in item.attachments] if item else []
        yield ThreadItemDoneEvent(
            item=AssistantMessageItem(
                id=self.store.generate_item_id("message", thread, context),
                thread_id=thread.id,
                created_at=datetime.now(),
                content=[AssistantMessageContent(text=f"Got {len(names)} file(s): {names}")],
            )
        )


def create_app(dsn: str, upload_dir: str, public_url: str, schema: str | None = None) -> Starlette:

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store: AsyncpgStore[Ctx] = await AsyncpgStore.connect(dsn, schema=schema, max_size=10)
        await store.migrate()
        uploads = DirectUploadAttachmentStore(
            store, LocalBlobStorage(upload_dir), base_url=f"{public_url}/chatkit"
        )
        chat_store = StoreWithAttachments(store, uploads)
        app.router.routes.extend(
            chatkit_routes(Server(chat_store, uploads), context_factory, uploads=uploads)
        )
        yield
        await store.close()

    return Starlette(lifespan=lifespan)


app = (
    create_app(os.environ["DATABASE_URL"], os.environ["UPLOAD_DIR"], "http://127.0.0.1:8000")
    if "DATABASE_URL" in os.environ and "UPLOAD_DIR" in os.environ
    else None
)
