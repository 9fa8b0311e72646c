"""No response waits on Nagle's algorithm: TCP_NODELAY on the server side, however uvicorn runs.

`uvicorn --workers N` on the asyncio loop accepts connections without TCP_NODELAY (its listening
socket has `proto=0`), so each response written in more than one piece waited ~40 ms for the
client's delayed ACK. These start a real 2-worker uvicorn and read the option on the server's own
sockets (a probe route in the app), after sequential requests on one keep-alive connection.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatkit_kit.testing import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_uvicorn(*options: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "tests.fixtures.nodelay_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", "2", "--log-level", "warning", "--no-access-log",
        *options,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")])}
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited with status {process.returncode}")
        try:
            httpx.get(f"{base}/probe", timeout=2)
            return process, base
        except httpx.HTTPError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("uvicorn did not answer within 60 s")


@pytest.fixture(
    params=[("--loop", "asyncio", "--http", "h11"), ("--loop", "uvloop", "--http", "httptools")],
    ids=["asyncio-h11", "uvloop-httptools"],
)
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    process, base = start_uvicorn(*request.param)
    try:
        yield base
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


CREATE = requests.create_thread("hi").model_dump(mode="json")


def test_keep_alive_connections_to_two_workers_have_nodelay(server: str) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=server, limits=limits, timeout=30) as client:
        for _ in range(10):
            listed = client.post("/chatkit", json={"type": "threads.list", "params": {}})
            assert listed.status_code == 200
            created = client.post("/chatkit", json=CREATE)
            assert created.status_code == 200
            assert created.text.startswith("data: ")
        seen = client.get("/probe").json()
    # The connection that served the requests, and the listening socket every later
    # connection inherits the option from.
    assert seen == {"connection": 1, "listener": 1}
    with httpx.Client(base_url=server, limits=limits, timeout=30) as client:
        for _ in range(4):  # fresh connections, to either worker
            assert client.post("/chatkit", json={"type": "threads.list", "params": {}}).is_success
        assert client.get("/probe").json()["connection"] == 1


def test_the_server_extra_brings_httptools_and_uvloop() -> None:
    requirements = importlib.metadata.requires("chatkit-kit") or []
    server = [r for r in requirements if 'extra == "server"' in r.replace("'", '"')]
    assert any(r.replace(" ", "").startswith("uvicorn[standard]") for r in server), server
