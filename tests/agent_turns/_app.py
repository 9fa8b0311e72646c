"""A ChatKit app on a MemoryStore whose `respond` is given per test, served in process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from chatkit.server import ChatKitServer
from chatkit.types import ThreadMetadata, ThreadStreamEvent, UserMessageItem
from starlette.requests import Request

from chatkit_kit.asgi import chatkit_app
from chatkit_kit.stores import MemoryStore
from chatkit_kit.testing import ChatKitTestClient
from tests.fixtures.context import Ctx

Respond = Callable[
    ["FunctionServer", ThreadMetadata, "UserMessageItem | None", Ctx],
    AsyncIterator[ThreadStreamEvent],
]


class FunctionServer(ChatKitServer[Ctx]):
    """`respond` delegates to a function of (server, thread, item, context)."""

    def __init__(self, respond: Respond, store: MemoryStore[Ctx] | None = None) -> None:
        self.memory: MemoryStore[Ctx] = store or MemoryStore()
        super().__init__(self.memory)
        self._respond = respond

    def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        return self._respond(self, thread, input_user_message, context)


async def alice(request: Request) -> Ctx:
    return Ctx(request.headers.get("x-user", "alice"))


def client_for(server: ChatKitServer[Any]) -> ChatKitTestClient:
    return ChatKitTestClient(chatkit_app(server, alice))
