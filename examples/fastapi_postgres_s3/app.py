"""FastAPI + SQLAlchemyStore on PostgreSQL + two-phase uploads straight to S3.

Run: DATABASE_URL=postgresql+psycopg://user@host/db S3_BUCKET=my-bucket \
     uvicorn examples.fastapi_postgres_s3.app:app
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
from fastapi import FastAPI, HTTPException, Request

from chatkit_kit.asgi import chatkit_routes
from chatkit_kit.attachments import StoreWithAttachments, UploadPolicy
from chatkit_kit.attachments.s3 import S3AttachmentStore
from chatkit_kit.stores import SQLAlchemyStore


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


def create_app(
    database_url: str, s3_client: Any, bucket: str, schema: str | None = None
) -> FastAPI:
    store: SQLAlchemyStore[Ctx] = SQLAlchemyStore.from_url(database_url, schema=schema)
    uploads = S3AttachmentStore(
        store,
        client=s3_client,
        bucket=bucket,
        policy=UploadPolicy(max_size=10 * 1024 * 1024),
        delete_with_thread=True,
    )
    # What ChatKit sees: fresh preview URLs whenever attachments leave the store, and a
    # thread's attachments deleted with it.
    chat_store = StoreWithAttachments(store, uploads)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.migrate()
        yield
        await store.close()

    app = FastAPI(lifespan=lifespan)
    app.router.routes.extend(chatkit_routes(Server(chat_store, uploads), context_factory))
    return app


def _from_environment() -> FastAPI | None:
    if "DATABASE_URL" not in os.environ or "S3_BUCKET" not in os.environ:
        return None
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", config=Config(signature_version="s3v4"))
    return create_app(os.environ["DATABASE_URL"], client, os.environ["S3_BUCKET"])


app = _from_environment()
