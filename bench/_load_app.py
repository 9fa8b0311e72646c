"""The app bench/load.py serves: examples/asyncpg_direct's ChatKit server (Starlette, AsyncpgStore,
direct uploads to a local directory) with the pool settings taken from the environment.

    uvicorn --factory _load_app:create --app-dir bench --workers N

Environment: DATABASE_URL, UPLOAD_DIR, PUBLIC_URL, LOAD_SCHEMA, LOAD_POOL_SIZE,
LOAD_POOL_TIMEOUT, LOAD_DELTAS (text deltas per streamed answer).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from _streaming import StreamingResponder  # noqa: E402
from examples.asyncpg_direct.app import Ctx, Server, context_factory  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from chatkit_kit.asgi import chatkit_routes  # noqa: E402
from chatkit_kit.attachments import LocalBlobStorage, StoreWithAttachments  # noqa: E402
from chatkit_kit.attachments.direct import DirectUploadAttachmentStore  # noqa: E402
from chatkit_kit.stores import AsyncpgStore  # noqa: E402


class StreamingServer(StreamingResponder, Server):
    """The example's server, answering with a streamed message of LOAD_DELTAS text deltas."""


def create() -> Starlette:
    dsn = os.environ["DATABASE_URL"]
    public_url = os.environ["PUBLIC_URL"]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store: AsyncpgStore[Ctx] = await AsyncpgStore.connect(
            dsn,
            schema=os.environ["LOAD_SCHEMA"],
            min_size=1,
            max_size=int(os.environ.get("LOAD_POOL_SIZE", "5")),
            pool_timeout=float(os.environ.get("LOAD_POOL_TIMEOUT", "2")),
        )
        uploads = DirectUploadAttachmentStore(
            store, LocalBlobStorage(os.environ["UPLOAD_DIR"]), base_url=f"{public_url}/chatkit"
        )
        server = StreamingServer(StoreWithAttachments(store, uploads), uploads)
        app.router.routes.extend(chatkit_routes(server, context_factory, uploads=uploads))
        yield
        await store.close()

    return Starlette(lifespan=lifespan)
