"""The examples in docs/asgi.md run, and the apps they build serve ChatKit requests."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import httpx
import pytest

from tests.test_asgi import serve

DOC = Path(__file__).resolve().parent.parent / "docs" / "asgi.md"


@pytest.fixture
def examples(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Every python block of the page, run in order in one module."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 4
    module = types.ModuleType("docs_asgi_examples")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # dataclasses look it up
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("name", ["app", "api"])
async def test_documented_apps_serve_chatkit(examples: types.ModuleType, name: str) -> None:
    origin = "https://app.example.com"
    async with serve(getattr(examples, name)) as url, httpx.AsyncClient(base_url=url) as client:
        listed = await client.post(
            "/chatkit",
            json={"type": "threads.list", "params": {}},
            headers={"Authorization": "Bearer alice", "Origin": origin},
        )
        anonymous = await client.post("/chatkit", json={"type": "threads.list", "params": {}})

    assert listed.status_code == 200
    assert listed.json() == {"data": [], "has_more": False}
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["message"] == "missing bearer token"
    # `app` is last bound by the CORS example; the FastAPI `api` has no CORS configured.
    expected_origin = origin if name == "app" else None
    assert listed.headers.get("access-control-allow-origin") == expected_origin
