"""The `chatkit-kit demo` backend: our stores, attachments, endpoint and converters composed.

Demo only: every request belongs to one local user (`DEMO_USER`); a real app builds its context
from its own authentication.
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from chatkit.server import ChatKitServer
from chatkit.store import AttachmentStore, Store
from chatkit.types import ThreadMetadata, ThreadStreamEvent, UserMessageItem
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from ..asgi import chatkit_routes
from ..attachments import AttachmentContentSource, LocalBlobStorage, StoreWithAttachments
from ..attachments.direct import DirectUploadAttachmentStore
from ..stores import SQLAlchemyStore
from ._startup import local_url, make_s3_client, mask_url
from .responders import Responder, offline_responder, user_text

logger = logging.getLogger("chatkit_kit.demo")

DEMO_USER = "demo-user"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///chatkit-demo.db"
DEFAULT_FILES_DIR = "chatkit-demo-files"
DOMAIN_KEY = "domain_pk_localhost_dev"
"""ChatKit.js wants a domain key; any placeholder works on localhost."""


_REQUEST_BASE_URL: ContextVar[str | None] = ContextVar("chatkit_kit_demo_base_url", default=None)
"""The origin the browser used for the current request (`http://host:port`)."""


def request_base_url(request: Request) -> str:
    """The origin the browser used (from its Host header), never the bind address."""
    return str(request.base_url).rstrip("/")


@dataclass(frozen=True)
class DemoContext:
    """The request context of the demo: one local user."""

    user_id: str


async def demo_context(request: Request) -> DemoContext:
    """Every demo request belongs to the one local user."""
    _REQUEST_BASE_URL.set(request_base_url(request))
    return DemoContext(user_id=DEMO_USER)


class _DemoUploads(DirectUploadAttachmentStore[DemoContext]):
    """Direct uploads whose download and preview URLs use the origin of the current request.

    The demo may listen on 0.0.0.0 and be opened as localhost, a LAN address or a tunnel;
    URLs built from the bind address would not load in the browser.
    """

    def download_url(self, attachment_id: str) -> str:
        url = super().download_url(attachment_id)
        origin = _REQUEST_BASE_URL.get()
        if origin is None:
            return url
        return origin + "/chatkit" + url[len(self.base_url) :]


class DemoServer(ChatKitServer[DemoContext]):
    """A ChatKit server that titles new threads and answers through a responder."""

    def __init__(
        self,
        store: Store[DemoContext],
        attachment_store: AttachmentStore[DemoContext],
        responder: Responder,
    ) -> None:
        super().__init__(store, attachment_store)
        self.store: Store[DemoContext] = store
        self.attachment_source: AttachmentContentSource | None = (
            attachment_store if isinstance(attachment_store, AttachmentContentSource) else None
        )
        self.responder = responder

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Any
    ) -> AsyncIterator[ThreadStreamEvent]:
        if thread.title is None and input_user_message is not None:
            thread.title = user_text(input_user_message)[:60] or "New chat"
        async for event in self.responder(self, thread, input_user_message, context):
            yield event


@dataclass
class DemoConfig:
    """What `chatkit-kit demo` was asked to run."""

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8000
    files_dir: str = DEFAULT_FILES_DIR
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None
    responder: Responder | None = None
    mode: str = "offline"

    @property
    def base_url(self) -> str:
        """The URL to open on this machine (a wildcard bind address becomes 127.0.0.1)."""
        return local_url(self.host, self.port)


def _page(config: DemoConfig, base_url: str) -> str:
    """The page for a browser that reached the demo at `base_url`."""
    if config.s3_bucket:
        upload: dict[str, Any] = {"type": "two_phase"}
    else:
        upload = {"type": "direct", "uploadUrl": f"{base_url}/chatkit/attachments/upload"}
    options = {
        "api": {
            "url": f"{base_url}/chatkit",
            "domainKey": DOMAIN_KEY,
            "uploadStrategy": upload,
        },
        "composer": {"attachments": {"enabled": True}},
        "history": {"enabled": True},
    }
    template = resources.files("chatkit_kit.demo").joinpath("page.html").read_text("utf-8")
    options_js = json.dumps(options, indent=2).replace("</", "<\\/")
    return template.replace("__OPTIONS__", options_js).replace("__MODE__", html.escape(config.mode))


def build_app(config: DemoConfig) -> Starlette:
    """The demo Starlette app; the store is migrated at startup and closed at shutdown."""
    store: SQLAlchemyStore[DemoContext] = SQLAlchemyStore.from_url(config.database_url)
    attachments: Any
    uploads: DirectUploadAttachmentStore[DemoContext] | None = None
    if config.s3_bucket:
        from ..attachments.s3 import S3AttachmentStore

        client = make_s3_client(config.s3_endpoint_url)
        attachments = S3AttachmentStore(
            store, client=client, bucket=config.s3_bucket, delete_with_thread=True
        )
    else:
        Path(config.files_dir).mkdir(parents=True, exist_ok=True)
        uploads = _DemoUploads(
            store,
            LocalBlobStorage(config.files_dir),
            base_url=f"{config.base_url}/chatkit",
            delete_with_thread=True,
        )
        attachments = uploads
    chat_store = StoreWithAttachments(store, attachments)
    server = DemoServer(chat_store, attachments, config.responder or offline_responder)

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(_page(config, request_base_url(request)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        version = await store.migrate()
        logger.info(
            "database ready (schema version %s): %s", version, mask_url(config.database_url)
        )
        try:
            yield
        finally:
            await store.close()

    routes = [
        Route("/", index),
        *chatkit_routes(server, demo_context, path="/chatkit", uploads=uploads),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.server = server
    return app


__all__ = [
    "DEMO_USER",
    "DemoConfig",
    "DemoContext",
    "DemoServer",
    "build_app",
    "demo_context",
]
