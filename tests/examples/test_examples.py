"""Each example app runs: real PostgreSQL, real S3 protocol (moto server), real uploads."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from chatkit.types import ThreadMetadata
from examples.asyncpg_direct.app import create_app as create_asyncpg_app
from examples.custom_store.store import TenantContext, TenantStore
from examples.fastapi_postgres_s3.app import create_app as create_fastapi_app

USER = {"x-user-id": "alice"}


@pytest.fixture
def schema(postgres_dsn: str) -> Any:
    name = f"ckt_example_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@asynccontextmanager
async def client_for(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000", headers=USER
        ) as client,
    ):
        yield client


async def chatkit(client: httpx.AsyncClient, payload: dict[str, Any]) -> Any:
    response = await client.post("/chatkit", json=payload)
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        return [
            json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")
        ]
    return response.json()


def new_thread(attachment_id: str) -> dict[str, Any]:
    return {
        "type": "threads.create",
        "params": {
            "input": {
                "content": [{"type": "input_text", "text": "see attached"}],
                "attachments": [attachment_id],
                "inference_options": {},
            }
        },
    }


async def test_fastapi_postgres_s3_two_phase_upload(
    postgres_dsn: str, schema: str, s3_client: Any, bucket: str
) -> None:
    url = postgres_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    app = create_fastapi_app(url, s3_client, bucket, schema=schema)
    async with client_for(app) as client:
        created = await chatkit(
            client,
            {
                "type": "attachments.create",
                "params": {"name": "notes.txt", "size": 5, "mime_type": "text/plain"},
            },
        )
        descriptor = created["upload_descriptor"]
        async with httpx.AsyncClient() as browser:  # the browser's PUT, straight to S3
            put = await browser.request(
                descriptor["method"],
                descriptor["url"],
                headers=descriptor["headers"],
                content=b"hello",
            )
        assert put.status_code == 200, put.text
        events = await chatkit(client, new_thread(created["id"]))
        thread_id = events[0]["thread"]["id"]
        reply = [e["item"] for e in events if e["type"] == "thread.item.done"][-1]
        assert reply["content"][0]["text"] == "Got 1 file(s): ['notes.txt']"
        items = await chatkit(client, {"type": "items.list", "params": {"thread_id": thread_id}})
        [sent] = next(i for i in items["data"] if i["type"] == "user_message")["attachments"]
        assert sent["id"] == created["id"] and "upload_descriptor" not in sent
        unauthenticated = await client.post(
            "/chatkit", json={"type": "threads.list", "params": {}}, headers={"x-user-id": ""}
        )
        assert unauthenticated.status_code == 401


async def test_asyncpg_direct_upload(postgres_dsn: str, schema: str, tmp_path: Path) -> None:
    app = create_asyncpg_app(postgres_dsn, str(tmp_path), "http://127.0.0.1:8000", schema=schema)
    async with client_for(app) as client:
        upload = await client.post(
            "/chatkit/attachments/upload", files={"file": ("a.txt", b"bytes", "text/plain")}
        )
        assert upload.status_code == 200, upload.text
        attachment = upload.json()
        events = await chatkit(client, new_thread(attachment["id"]))
        reply = [e["item"] for e in events if e["type"] == "thread.item.done"][-1]
        assert reply["content"][0]["text"] == "Got 1 file(s): ['a.txt']"
        download = await client.get(f"/chatkit/attachments/{attachment['id']}")
        assert download.status_code == 200 and download.content == b"bytes"
        foreign = await client.get(
            f"/chatkit/attachments/{attachment['id']}", headers={"x-user-id": "mallory"}
        )
        assert foreign.status_code == 404


async def test_custom_store_scopes_by_tenant_and_generates_long_ids(tmp_path: Path) -> None:
    async with TenantStore.for_url(f"sqlite+aiosqlite:///{tmp_path / 'tenant.db'}") as store:
        await store.migrate()
        acme, globex = TenantContext("acme", "u1"), TenantContext("globex", "u1")
        thread_id = store.generate_thread_id(acme)
        assert thread_id.startswith("thr_") and len(thread_id) == 4 + 16
        await store.save_thread(ThreadMetadata(id=thread_id, created_at=_now()), acme)
        assert [t.id for t in (await store.load_threads(10, None, "desc", acme)).data] == [
            thread_id
        ]
        assert (await store.load_threads(10, None, "desc", globex)).data == []


def _now() -> Any:
    from datetime import datetime

    return datetime.now()
