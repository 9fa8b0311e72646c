"""Run `chatkit-kit demo` as a real process (python -m chatkit_kit.demo) for the demo tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

STARTUP_SECONDS = 90
"""Generous: CI machines are shared, and the first start migrates the database."""
SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def demo_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a demo process: no OpenAI key, this checkout's src first."""
    extra = dict(extra or {})
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    paths = [str(SRC), extra.pop("PYTHONPATH", None), env.get("PYTHONPATH")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    env.update(extra)
    return env


def run_demo_to_exit(
    workdir: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Run a demo that is expected to stop by itself; returns (status, stdout, stderr)."""
    done = subprocess.run(
        [sys.executable, "-m", "chatkit_kit.demo", "--port", str(free_port()), *args],
        cwd=workdir,
        env=demo_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout, done.stderr


class Demo:
    """One run of the demo process, ready once its page answers on 127.0.0.1."""

    def __init__(self, workdir: Path, port: int, *args: str) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chatkit_kit.demo", "--port", str(port), *args],
            cwd=workdir,
            env=demo_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if self.process.poll() is not None:
                output, _ = self.process.communicate(timeout=20)
                raise AssertionError(f"demo exited early:\n{output}")
            try:
                if httpx.get(self.base + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.process.kill()
                output, _ = self.process.communicate(timeout=20)
                raise AssertionError(f"demo did not start within {STARTUP_SECONDS} s:\n{output}")
            time.sleep(0.1)
        self.http = httpx.Client(base_url=self.base, timeout=10)

    def request(self, payload: dict[str, Any]) -> Any:
        response = self.http.post("/chatkit", json=payload)
        assert response.status_code == 200, response.text
        return response.json()

    def stream(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """POST a streaming request and parse its SSE events as they arrive."""
        events = []
        with self.http.stream("POST", "/chatkit", json=payload) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[len("data: ") :]))
        return events

    def stop(self) -> str:
        """Ctrl-C: the process must stop cleanly; returns everything it printed."""
        self.http.close()
        self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=20)
        assert self.process.returncode == 0, output
        return output


def message(text: str, attachments: list[str] | None = None) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": attachments or [],
        "inference_options": {},
    }


def done_items(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["item"] for e in events if e["type"] == "thread.item.done"]
