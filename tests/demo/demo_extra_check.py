"""Run by `nox -s demo_extra` in a virtual environment holding only `chatkit-kit[demo]`.

Starts `chatkit-kit demo` on the embedded SQLite default and on PostgreSQL (a plain
`postgresql://` URL, a fresh database) and checks that each answers a streamed threads.create and
a threads.list. Standard library only besides what the extra installs; exits non-zero on failure.
PostgreSQL comes from CHATKIT_KIT_TEST_POSTGRES_DSN (default postgresql://postgres@127.0.0.1:5432/test);
without a server the PostgreSQL half fails under CI=true and is reported as not run otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

DSN = os.environ.get("CHATKIT_KIT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(base: str, payload: dict[str, Any]) -> str:
    request = urllib.request.Request(
        base + "/chatkit",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, response.status
        return str(response.read().decode())


def run_demo(label: str, *args: str) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    workdir = tempfile.mkdtemp(prefix="chatkit-kit-demo-extra-")
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    process = subprocess.Popen(
        [sys.executable, "-m", "chatkit_kit.demo", "--port", str(port), *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{label}: the demo exited:\n{process.stdout.read()}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(base + "/", timeout=2) as page:
                    if page.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{label}: the demo did not answer within 60 s")
            time.sleep(0.2)
        message = {
            "content": [{"type": "input_text", "text": f"hello from {label}"}],
            "attachments": [],
            "inference_options": {},
        }
        stream = _post(base, {"type": "threads.create", "params": {"input": message}})
        assert f'You said: \\"hello from {label}\\"' in stream, stream
        listed = json.loads(_post(base, {"type": "threads.list", "params": {}}))
        assert [t["title"] for t in listed["data"]] == [f"hello from {label}"], listed
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    assert process.returncode == 0, output
    print(f"demo extra: the demo answers on {label}")


def _admin(sql: str) -> None:
    import psycopg  # the PostgreSQL driver the demo extra installs

    with psycopg.connect(DSN, autocommit=True) as connection:
        connection.execute(sql.encode())


def _postgres_reachable() -> bool:
    parts = urlsplit(DSN)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5432), 2):
            return True
    except OSError:
        return False


def main() -> int:
    run_demo("SQLite")
    if not _postgres_reachable():
        print(f"demo extra: PostgreSQL is not reachable at {DSN}: not run", file=sys.stderr)
        return 1 if IN_CI else 0
    name = f"chatkit_demo_extra_{uuid.uuid4().hex[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        url = urlunsplit(urlsplit(DSN)._replace(scheme="postgresql", path=f"/{name}"))
        run_demo("PostgreSQL", "--database-url", url)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
