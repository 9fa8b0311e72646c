"""Fixtures for the attachment backends: a moto S3 server and a uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import moto.server as moto_server
import pytest
import uvicorn
from botocore.config import Config
from chatkit.server import ChatKitServer, NonStreamingResult, StreamingResult
from chatkit.types import ThreadMetadata, ThreadStreamEvent, UserMessageItem


@dataclass
class Ctx:
    user_id: str


ALICE = Ctx("alice")
MALLORY = Ctx("mallory")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server speaking real HTTP on 127.0.0.1 (random port)."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(signature_version="s3v4", request_checksum_calculation="when_required"),
    )


@pytest.fixture
def bucket(s3_client: Any) -> Iterator[str]:
    """A fresh bucket per test, emptied and removed afterwards."""
    name = f"chatkit-kit-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        listed = s3_client.list_objects_v2(Bucket=name).get("Contents", [])
        for obj in listed:
            s3_client.delete_object(Bucket=name, Key=obj["Key"])
        s3_client.delete_bucket(Bucket=name)


def object_keys(s3_client: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])]


class EchoServer(ChatKitServer[Ctx]):
    """A ChatKit server whose respond streams nothing: enough to drive the store calls."""

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        if False:  # pragma: no cover
            yield  # type: ignore[unreachable]


async def call(server: ChatKitServer[Ctx], request: dict[str, Any], context: Ctx) -> Any:
    """Run one ChatKit request through `process`; return the JSON (or the list of SSE events)."""
    result = await server.process(json.dumps(request), context)
    if isinstance(result, NonStreamingResult):
        return json.loads(result.json)
    assert isinstance(result, StreamingResult)
    events = []
    async for frame in result:
        text = frame.decode()
        assert text.startswith("data: ")
        events.append(json.loads(text[len("data: ") :]))
    return events


def user_message(text: str, attachment_ids: list[str]) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": attachment_ids,
        "inference_options": {},
    }


@dataclass
class LiveServer:
    base_url: str


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Any], Any]]:
    """Start ASGI apps on a real uvicorn server on 127.0.0.1 in this test's event loop."""
    servers: list[tuple[Any, asyncio.Task[None]]] = []

    async def start(app: Any) -> LiveServer:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.ensure_future(server.serve())
        servers.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        return LiveServer(f"http://127.0.0.1:{port}")

    yield start
    for server, task in servers:
        server.should_exit = True
        await task
