"""Many uvicorn workers on one PostgreSQL: throughput, latency and errors at rising concurrency.

Starts the example app (bench/_load_app.py: examples/asyncpg_direct's ChatKit server with a
streamed answer, AsyncpgStore, direct uploads) with N uvicorn workers on loopback, then drives a
realistic ChatKit mix at each concurrency level: per virtual user, `threads.create` (streamed),
an upload, `threads.add_user_message` with that attachment (streamed), an `items.list` page,
`threads.list`, and another `threads.add_user_message`. Every level is bounded in time and in
requests. Prints one row per level: requests/s, p50/p99 latency, and errors by kind.

Afterwards it checks the data: every acknowledged user message (a 200 stream that completed)
is stored exactly once, in the order it was sent, and nothing a failed request wrote is half
there (a rejected message is either absent or, if stored, answered). Below saturation there
must be no 5xx; at saturation the pool wait is bounded (LOAD_POOL_TIMEOUT) and what cannot be
served gets a 503 with Retry-After.

    python bench/load.py [--workers 2] [--levels 4,16,64] [--seconds 10] [--smoke]

Needs PostgreSQL at CHATKIT_KIT_TEST_POSTGRES_DSN (default postgresql://postgres@127.0.0.1:5432/
test); works in a fresh schema it drops at the end. Exit status 1 if a data check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg
import httpx

from chatkit_kit.stores import AsyncpgStore

ROOT = Path(__file__).resolve().parents[1]
DSN = os.environ.get("CHATKIT_KIT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Level:
    concurrency: int
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    retry_after_missing: int = 0
    elapsed: float = 0.0


@dataclass
class Sent:
    """What one user sent and what the server acknowledged, in order."""

    user: str
    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (thread_id, text)
    rejected: list[tuple[str | None, str]] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _input(text: str, attachments: list[str] | None = None) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": attachments or [],
        "inference_options": {},
    }


class Driver:
    def __init__(self, base: str, deadline: float, budget: int, level: Level) -> None:
        self.base = base
        self.deadline = deadline
        self.budget = budget
        self.level = level

    def _spend(self) -> bool:
        if time.monotonic() >= self.deadline or self.budget <= 0:
            return False
        self.budget -= 1
        return True

    def _record(self, started: float, status: str, response: httpx.Response | None) -> None:
        self.level.latencies.append(time.monotonic() - started)
        self.level.statuses[status] += 1
        if response is not None and response.status_code == 503:
            if "retry-after" not in response.headers:
                self.level.retry_after_missing += 1

    async def stream(
        self, client: httpx.AsyncClient, user: str, body: dict[str, Any]
    ) -> tuple[bool, str | None]:
        """POST a streaming request; (completed with a 200 and no error event, thread id)."""
        started = time.monotonic()
        thread_id: str | None = body.get("params", {}).get("thread_id")
        try:
            async with client.stream(
                "POST", "/chatkit", json=body, headers={"x-user-id": user}
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    self._record(started, str(response.status_code), response)
                    return False, thread_id
                failed = False
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    if event.get("type") == "thread.created":
                        thread_id = event["thread"]["id"]
                    elif event.get("type") == "error":
                        failed = True
                self._record(started, "200 error event" if failed else "200", None)
                return not failed, thread_id
        except httpx.HTTPError as error:
            self._record(started, type(error).__name__, None)
            return False, thread_id

    async def call(
        self, client: httpx.AsyncClient, user: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        started = time.monotonic()
        try:
            response = await client.post("/chatkit", json=body, headers={"x-user-id": user})
        except httpx.HTTPError as error:
            self._record(started, type(error).__name__, None)
            return None
        self._record(started, str(response.status_code), response)
        return response.json() if response.status_code == 200 else None

    async def upload(self, client: httpx.AsyncClient, user: str) -> str | None:
        started = time.monotonic()
        try:
            response = await client.post(
                "/chatkit/attachments/upload",
                files={"file": ("notes.txt", b"load test attachment\n" * 20, "text/plain")},
                headers={"x-user-id": user},
            )
        except httpx.HTTPError as error:
            self._record(started, type(error).__name__, None)
            return None
        self._record(started, str(response.status_code), response)
        if response.status_code != 200:
            return None
        attachment_id: str = response.json()["id"]
        return attachment_id

    async def user_loop(self, client: httpx.AsyncClient, sent: Sent) -> None:
        user = sent.user
        n = 0
        while self._spend():
            text = f"{user} message {n}"
            ok, thread_id = await self.stream(
                client, user, {"type": "threads.create", "params": {"input": _input(text)}}
            )
            (sent.acknowledged if ok else sent.rejected).append((thread_id, text))  # type: ignore[arg-type]
            n += 1
            if not ok or thread_id is None:
                continue
            attachment = await self.upload(client, user) if self._spend() else None
            for attachments in ([attachment] if attachment else [], []):
                if not self._spend():
                    return
                text = f"{user} message {n}"
                ok, _ = await self.stream(
                    client,
                    user,
                    {
                        "type": "threads.add_user_message",
                        "params": {"thread_id": thread_id, "input": _input(text, attachments)},
                    },
                )
                (sent.acknowledged if ok else sent.rejected).append((thread_id, text))
                n += 1
                if self._spend():
                    await self.call(
                        client,
                        user,
                        {
                            "type": "items.list",
                            "params": {"thread_id": thread_id, "limit": 20, "order": "desc"},
                        },
                    )
            if self._spend():
                await self.call(
                    client, user, {"type": "threads.list", "params": {"limit": 20, "order": "desc"}}
                )


async def wait_until_up(base: str, process: asyncio.subprocess.Process, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"the app exited with status {process.returncode}")
            try:
                response = await client.post("/chatkit", content=b"{}")
                if response.status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the app did not answer within {seconds} s")


async def run_level(
    base: str, concurrency: int, seconds: float, max_requests: int, sent: list[Sent], run: str
) -> Level:
    level = Level(concurrency)
    driver = Driver(base, time.monotonic() + seconds, max_requests, level)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(30.0)
    users = [Sent(f"{run}-c{concurrency}-u{i}") for i in range(concurrency)]
    sent.extend(users)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        await asyncio.gather(*(driver.user_loop(client, user) for user in users))
    level.elapsed = time.monotonic() - started
    return level


async def check_data(dsn: str, schema: str, sent: list[Sent]) -> tuple[list[str], int]:
    """Problems found, and how many rejected messages were stored anyway (with their answer).

    Every acknowledged message must be stored exactly once, in the order sent, and answered
    (followed by the assistant message). A rejected message may be absent or stored, never
    twice, and never left without its answer (half-written).
    """
    problems: list[str] = []
    rejected_but_stored = 0
    store: AsyncpgStore[Any] = await AsyncpgStore.connect(
        dsn, schema=schema, min_size=1, max_size=2
    )
    async with store:
        for user in sent:
            ctx = {"user_id": user.user}
            stored: dict[str, list[str]] = {}
            unanswered: dict[str, list[str]] = {}
            for thread in (await store.load_threads(1000, None, "asc", ctx)).data:
                items = (await store.load_thread_items(thread.id, None, 1000, "asc", ctx)).data
                texts = stored.setdefault(thread.id, [])
                for n, item in enumerate(items):
                    if item.type != "user_message":
                        continue
                    text = item.content[0].text  # type: ignore[union-attr]
                    texts.append(text)
                    if n + 1 >= len(items) or items[n + 1].type != "assistant_message":
                        unanswered.setdefault(thread.id, []).append(text)
            expected: dict[str, list[str]] = {}
            for thread_id, text in user.acknowledged:
                expected.setdefault(thread_id, []).append(text)
            for thread_id, acked in expected.items():
                got = [t for t in stored.get(thread_id, []) if t in acked]
                if got != acked:
                    problems.append(f"{user.user} {thread_id}: acknowledged {acked}, stored {got}")
            for thread_id, text in user.rejected:
                count = stored.get(thread_id or "", []).count(text)
                rejected_but_stored += count
                if count > 1:
                    problems.append(f"{user.user}: rejected {text!r} stored {count} times")
            for thread_id, texts in unanswered.items():
                problems.append(f"{user.user} {thread_id}: stored without an answer: {texts}")
    return problems, rejected_but_stored


def table(levels: list[Level], workers: int, pool_size: int) -> str:
    header = (
        f"{'concurrency':>11} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'5xx':>5} {'503':>5} {'other errors':<24}"
    )
    lines = [
        f"bench/load.py: {workers} uvicorn workers, AsyncpgStore pool {pool_size} per worker",
        header,
        "-" * len(header),
    ]
    for level in levels:
        samples = sorted(level.latencies)
        count = len(samples)
        p50 = statistics.median(samples) * 1000 if samples else 0.0
        p99 = samples[min(count - 1, int(0.99 * count))] * 1000 if samples else 0.0
        five = sum(n for s, n in level.statuses.items() if s.startswith("5"))
        other = {s: n for s, n in level.statuses.items() if not s.startswith(("2", "5"))}
        other_text = ", ".join(f"{s}: {n}" for s, n in sorted(other.items())) or "-"
        if level.statuses.get("200 error event"):
            other_text += f" (stream error events: {level.statuses['200 error event']})"
        lines.append(
            f"{level.concurrency:>11} {count:>9} {count / level.elapsed:>8.1f} {p50:>8.1f} "
            f"{p99:>8.1f} {five:>5} {level.statuses.get('503', 0):>5} {other_text:<24}"
        )
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=DSN)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--levels", default="4,16,64", help="comma-separated concurrency levels")
    parser.add_argument("--seconds", type=float, default=10.0, help="time bound per level")
    parser.add_argument("--max-requests", type=int, default=20_000, help="request bound per level")
    parser.add_argument("--pool-size", type=int, default=5, help="connections per worker")
    parser.add_argument("--pool-timeout", type=float, default=2.0, help="bounded pool wait (s)")
    parser.add_argument("--smoke", action="store_true", help="tiny levels, for the test suite")
    args = parser.parse_args(argv)
    if args.smoke:
        args.workers, args.levels, args.seconds, args.max_requests = 1, "2,4", 2.0, 200
    levels = [int(n) for n in args.levels.split(",") if n.strip()]
    for bound, what in ((args.seconds, "--seconds"), (args.max_requests, "--max-requests")):
        if not bound > 0:
            parser.error(f"{what} must be positive")

    schema = f"ckload_{uuid.uuid4().hex[:8]}"
    run = uuid.uuid4().hex[:6]
    async with await AsyncpgStore.connect(args.dsn, schema=schema, min_size=1, max_size=1) as setup:
        await setup.migrate()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    results: list[Level] = []
    sent: list[Sent] = []
    try:
        with tempfile.TemporaryDirectory() as uploads:
            env = {
                **os.environ,
                "DATABASE_URL": args.dsn,
                "UPLOAD_DIR": uploads,
                "PUBLIC_URL": base,
                "LOAD_SCHEMA": schema,
                "LOAD_POOL_SIZE": str(args.pool_size),
                "LOAD_POOL_TIMEOUT": str(args.pool_timeout),
                "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "src")]),
            }
            command = [
                sys.executable, "-m", "uvicorn", "--factory", "_load_app:create",
                "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(args.workers), "--log-level", "warning", "--no-access-log",
            ]  # fmt: skip
            process = await asyncio.create_subprocess_exec(*command, env=env)
            try:
                await wait_until_up(base, process, 60)
                for concurrency in levels:
                    level = await run_level(
                        base, concurrency, args.seconds, args.max_requests, sent, run
                    )
                    results.append(level)
            finally:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except asyncio.TimeoutError:
                    process.kill()
                    await process.wait()
            print(table(results, args.workers, args.pool_size))
            problems, rejected_but_stored = await check_data(args.dsn, schema, sent)
    finally:
        conn = await asyncpg.connect(args.dsn)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    acknowledged = sum(len(s.acknowledged) for s in sent)
    rejected = sum(len(s.rejected) for s in sent)
    missing_retry_after = sum(level.retry_after_missing for level in results)
    print(
        f"\ndata check: {acknowledged} acknowledged user messages stored once and in order "
        f"unless listed; {rejected} rejected ({rejected_but_stored} of them stored, answered); "
        f"{len(problems)} problems"
    )
    for problem in problems[:20]:
        print(f"  {problem}")
    if missing_retry_after:
        print(f"  {missing_retry_after} responses with status 503 had no Retry-After header")
    return 1 if problems or missing_retry_after else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
