"""A complete ChatKit server: a database, uploads, and an openai-agents Agent with a tool.

SQLite by default (any SQLAlchemy URL works), direct uploads to a local directory (or S3
two-phase uploads when S3_BUCKET is set), and an Agent answering through
`chatkit_kit.agents.agent_turn`: recent history in whole turns, attachments and earlier answers
converted for the model's API, unique ids for every answer, guardrail and API errors as
ChatKit error events.

Run:
    pip install "chatkit-kit[sqlalchemy,server]"   # plus "chatkit-kit[s3]" for S3
    OPENAI_API_KEY=sk-... uvicorn examples.agent_server.app:app --port 8000

Settings (environment): DATABASE_URL (default sqlite+aiosqlite:///chatkit.db), UPLOAD_DIR
(default ./chatkit-uploads), S3_BUCKET (S3 instead of UPLOAD_DIR), PUBLIC_URL (default
http://127.0.0.1:8000), OPENAI_MODEL (default gpt-4.1-mini), MODEL_API ("responses", the
default, or "chat_completions").
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunContextWrapper,
    function_tool,
)
from chatkit.agents import AgentContext
from chatkit.server import ChatKitServer
from chatkit.store import AttachmentStore, Store
from chatkit.types import ThreadMetadata, ThreadStreamEvent, UserMessageItem
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request

from chatkit_kit.agents import HistoryWindow, agent_turn
from chatkit_kit.asgi import chatkit_routes
from chatkit_kit.attachments import (
    DirectUploadAttachmentStore,
    LocalBlobStorage,
    StoreWithAttachments,
    UploadPolicy,
)
from chatkit_kit.stores import SQLAlchemyStore


@dataclass(frozen=True)
class Ctx:
    """The request context: who is asking. Stores scope every row by `user_id`."""

    user_id: str


async def context_factory(request: Request) -> Ctx:
    user = request.headers.get("x-user-id")  # stand-in for your real authentication
    if not user:
        raise HTTPException(401, "missing x-user-id")
    return Ctx(user)


ORDERS: dict[str, dict[str, str]] = {
    "alice": {"A-1001": "shipped on Monday", "A-1002": "waiting for stock"},
    "bob": {"B-2001": "delivered"},
}
"""Stand-in for your order database."""


@function_tool
async def get_order_status(wrapper: RunContextWrapper[AgentContext[Ctx]], order_id: str) -> str:
    """Look up the status of one of the signed-in user's orders."""
    user_id = wrapper.context.request_context.user_id  # tools see the ChatKit request context
    status = ORDERS.get(user_id, {}).get(order_id)
    return json.dumps({"order_id": order_id, "status": status or "no such order"})


INSTRUCTIONS = (
    "You are the shop's assistant. Answer briefly. Use get_order_status for questions about "
    "an order; never guess an order's status."
)


def build_agent(model: Model | str) -> Agent[AgentContext[Ctx]]:
    """The assistant: instructions, one tool, and the model to call."""
    return Agent(
        name="Shop assistant", instructions=INSTRUCTIONS, tools=[get_order_status], model=model
    )


class AgentServer(ChatKitServer[Ctx]):
    """Answers every message with the agent; titles new threads with their first words."""

    def __init__(
        self, store: Store[Ctx], attachments: AttachmentStore[Ctx], agent: Agent[Any]
    ) -> None:
        super().__init__(store, attachments)
        self.attachments = attachments
        self.agent = agent

    def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        if thread.title is None and input_user_message is not None:
            words = "".join(getattr(part, "text", "") for part in input_user_message.content)
            thread.title = words[:60] or "New chat"
        return agent_turn(
            self.agent,
            thread,
            input_user_message,
            context,
            store=self.store,
            attachments=self.attachments,
            history=HistoryWindow(max_items=60),
        )


def create_app(
    *,
    model: Model | str,
    database_url: str = "sqlite+aiosqlite:///chatkit.db",
    upload_dir: str | Path = "chatkit-uploads",
    public_url: str = "http://127.0.0.1:8000",
    s3_client: Any = None,
    s3_bucket: str | None = None,
) -> Starlette:
    """The app: ChatKit at POST /chatkit, uploads under /chatkit/attachments/."""
    store: SQLAlchemyStore[Ctx] = SQLAlchemyStore.from_url(database_url)
    policy = UploadPolicy(max_size=20 * 1024 * 1024)
    uploads: DirectUploadAttachmentStore[Ctx] | None = None
    attachments: AttachmentStore[Ctx]
    if s3_bucket is not None:
        from chatkit_kit.attachments.s3 import S3AttachmentStore

        attachments = S3AttachmentStore(
            store, client=s3_client, bucket=s3_bucket, policy=policy, delete_with_thread=True
        )
    else:
        Path(upload_dir).mkdir(parents=True, exist_ok=True)
        uploads = DirectUploadAttachmentStore(
            store,
            LocalBlobStorage(upload_dir),
            base_url=f"{public_url.rstrip('/')}/chatkit",
            policy=policy,
            delete_with_thread=True,
        )
        attachments = uploads
    # What ChatKit sees: fresh preview URLs on the way out, attachments deleted with threads.
    server = AgentServer(StoreWithAttachments(store, attachments), attachments, build_agent(model))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.migrate()
        yield
        await store.close()

    app = Starlette(
        routes=chatkit_routes(server, context_factory, uploads=uploads), lifespan=lifespan
    )
    app.state.store = store
    return app


def openai_model(name: str, api: str) -> Model:
    """An OpenAI model on the Responses API or on Chat Completions (OPENAI_API_KEY)."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI()
    if api == "chat_completions":
        return OpenAIChatCompletionsModel(model=name, openai_client=client)
    return OpenAIResponsesModel(model=name, openai_client=client)


def _from_environment() -> Starlette | None:
    if "OPENAI_API_KEY" not in os.environ:
        return None
    model = openai_model(
        os.environ.get("OPENAI_MODEL", "gpt-4.1-mini"), os.environ.get("MODEL_API", "responses")
    )
    s3_client = None
    if os.environ.get("S3_BUCKET"):
        import boto3
        from botocore.config import Config

        s3_client = boto3.client("s3", config=Config(signature_version="s3v4"))
    return create_app(
        model=model,
        database_url=os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///chatkit.db"),
        upload_dir=os.environ.get("UPLOAD_DIR", "chatkit-uploads"),
        public_url=os.environ.get("PUBLIC_URL", "http://127.0.0.1:8000"),
        s3_client=s3_client,
        s3_bucket=os.environ.get("S3_BUCKET") or None,
    )


app = _from_environment()
