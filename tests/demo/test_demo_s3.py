"""`chatkit-kit demo --s3-bucket`: two-phase uploads to S3 (moto's server, real HTTP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatkit_kit.demo.app import DemoConfig, build_app


async def test_demo_with_s3_two_phase_uploads(
    tmp_path: Path, s3_endpoint: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    config = DemoConfig(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}",
        s3_bucket=bucket,
        s3_endpoint_url=s3_endpoint,
    )
    app = build_app(config)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=config.base_url) as http,
    ):
        page = (await http.get("/")).text
        assert '"type": "two_phase"' in page

        async def chatkit(payload: dict[str, Any]) -> Any:
            response = await http.post("/chatkit", json=payload)
            assert response.status_code == 200, response.text
            return response

        created = (
            await chatkit(
                {
                    "type": "attachments.create",
                    "params": {"name": "a.txt", "size": 3, "mime_type": "text/plain"},
                }
            )
        ).json()
        descriptor = created["upload_descriptor"]
        async with httpx.AsyncClient() as browser:
            put = await browser.put(
                descriptor["url"], headers=descriptor["headers"], content=b"abc"
            )
        assert put.status_code == 200
        stream = await chatkit(
            {
                "type": "threads.create",
                "params": {
                    "input": {
                        "content": [{"type": "input_text", "text": "file"}],
                        "attachments": [created["id"]],
                        "inference_options": {},
                    }
                },
            }
        )
        events = [json.loads(x[6:]) for x in stream.text.splitlines() if x.startswith("data: ")]
        reply = [e["item"] for e in events if e["type"] == "thread.item.done"][-1]
        assert 'Attachments received: "a.txt"' in reply["content"][0]["text"]
