"""An owner key or id over its limit is a 400 at the endpoint, never a 500 with a traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from chatkit.types import ThreadMetadata
from starlette.requests import Request

from chatkit_kit._http import ClientRequestError
from chatkit_kit.asgi import chatkit_app
from chatkit_kit.stores import MAX_OWNER_BYTES, MemoryStore
from tests.fixtures.context import Ctx
from tests.fixtures.servers import EchoServer


async def owner_from_header(request: Request) -> Ctx:
    return Ctx(user_id=request.headers.get("x-user", ""))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    store: MemoryStore[Ctx] = MemoryStore()
    app = chatkit_app(EchoServer(store, None), owner_from_header)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def _create(text: str) -> dict[str, Any]:
    return {
        "type": "threads.create",
        "params": {
            "input": {
                "content": [{"type": "input_text", "text": text}],
                "attachments": [],
                "inference_options": {},
            }
        },
    }


@pytest.mark.parametrize(
    "owner",
    ["a" * (MAX_OWNER_BYTES + 1), "é" * (MAX_OWNER_BYTES // 2 + 1), ""],
    ids=["ascii-over-limit", "utf8-over-limit", "empty"],
)
@pytest.mark.parametrize(
    "request_body",
    [
        {"type": "threads.list", "params": {"limit": 5}},
        {"type": "threads.get_by_id", "params": {"thread_id": "thr_x"}},
        _create("hi"),
    ],
    ids=["list", "get", "create"],
)
async def test_an_unusable_owner_key_is_a_400(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    owner: str,
    request_body: dict[str, Any],
) -> None:
    response = await client.post("/chatkit", json=request_body, headers={b"x-user": owner.encode()})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert "owner" in response.json()["error"]["message"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_an_id_over_its_limit_is_a_400_on_writes() -> None:
    store: MemoryStore[Ctx] = MemoryStore()
    with pytest.raises(ValueError) as raised:
        await store.save_thread(
            ThreadMetadata(id="t" * 600, created_at=datetime(2026, 1, 1)),
            Ctx(user_id="u"),
        )
    assert isinstance(raised.value, ClientRequestError) and raised.value.status_code == 400
