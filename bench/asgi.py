"""Time per streamed event through the ChatKit endpoint, over real HTTP on loopback.

Three figures for the same N-event stream (a `threads.create` whose `respond` yields text deltas):

- floor: iterating `ChatKitServer.process` in process, no HTTP at all;
- hand-written: the minimal Starlette handler users write today, `StreamingResponse(result)`
  around `process`, served by uvicorn;
- chatkit_kit.asgi: `chatkit_routes(...)`, served by the same uvicorn process.

Both HTTP endpoints live in one app in a child process; the client (httpx, this process) runs
them interleaved, so machine noise hits both alike. Prints a table of medians; asserts nothing.

    python bench/asgi.py [--events 1000] [--runs 15] [--warmup 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from _streaming import streamed_message  # bench/ is on sys.path: this script's directory
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.types import (
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
)
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from chatkit_kit.asgi import chatkit_app

# Events that upstream adds around respond()'s own: thread.created, the user message's
# thread.item.done, stream_options, and the assistant message's added and done events.
FIXED_EVENTS = 5


@dataclass
class Ctx:
    user_id: str


class BenchServer(ChatKitServer[Ctx]):
    """Streams `deltas` text deltas for one assistant message, as fast as upstream allows."""

    def __init__(self, deltas: int) -> None:
        from chatkit_kit.stores import MemoryStore

        super().__init__(MemoryStore())
        self.deltas = deltas

    async def respond(
        self, thread: ThreadMetadata, input_user_message: UserMessageItem | None, context: Ctx
    ) -> AsyncIterator[ThreadStreamEvent]:
        deltas = ["token "] * self.deltas
        async for event in streamed_message(self.store, thread, context, deltas, "".join(deltas)):
            yield event


REQUEST = (
    b'{"type":"threads.create","params":{"input":{"content":[{"type":"input_text",'
    b'"text":"benchmark"}],"attachments":[],"inference_options":{}}}}'
)


async def context_factory(request: Request) -> Ctx:
    return Ctx(user_id="bench")


def build_app(server: BenchServer) -> Any:
    """One app with both endpoints: ours at /chatkit, the hand-written one at /handwritten."""

    async def handwritten(request: Request) -> Response:
        result = await server.process(await request.body(), await context_factory(request))
        if isinstance(result, StreamingResult):
            return StreamingResponse(result, media_type="text/event-stream")
        return Response(content=result.json, media_type="application/json")

    app = chatkit_app(server, context_factory)
    app.add_route("/handwritten", handwritten, methods=["POST"])
    return CpuClock(app)


class CpuClock:
    """Measures the server's CPU time per request; `GET /__cpu` returns the last one.

    Requests run one at a time, so the thread's CPU time over a request is that request's,
    unaffected by how busy the rest of the machine is (unlike wall time).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/__cpu":
            body = repr(self.last).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
            return
        start = time.thread_time()
        await self.app(scope, receive, send)
        self.last = time.thread_time() - start


def serve(events: int) -> None:
    """Child process: serve the app on a free loopback port and print the port."""
    import uvicorn

    config = uvicorn.Config(
        build_app(BenchServer(events - FIXED_EVENTS)),
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.ensure_future(server.serve())
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        print(server.servers[0].sockets[0].getsockname()[1], flush=True)
        await task

    asyncio.run(main())


@dataclass
class Sample:
    wall: float  # seconds per event, as the client sees it
    cpu: float  # server CPU seconds per event


async def time_floor(server: BenchServer, events: int) -> Sample:
    start, cpu_start = time.perf_counter(), time.thread_time()
    result = await server.process(REQUEST, Ctx(user_id="bench"))
    assert isinstance(result, StreamingResult)
    count = 0
    async for _ in result:
        count += 1
    wall, cpu = time.perf_counter() - start, time.thread_time() - cpu_start
    if count != events:
        raise SystemExit(f"floor: expected {events} events, got {count}")
    return Sample(wall / count, cpu / count)


async def time_http(client: httpx.AsyncClient, path: str, events: int) -> Sample:
    start = time.perf_counter()
    chunks = []
    async with client.stream("POST", path, content=REQUEST) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
    wall = time.perf_counter() - start
    count = b"".join(chunks).count(b"\n\n")
    if count != events:
        raise SystemExit(f"{path}: expected {events} events, got {count}")
    cpu = float((await client.get("/__cpu")).text)
    return Sample(wall / count, cpu / count)


async def run(args: argparse.Namespace, port: int) -> None:
    floor_server = BenchServer(args.events - FIXED_EVENTS)
    samples: dict[str, list[Sample]] = {"floor": [], "handwritten": [], "chatkit_kit": []}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for round_ in range(args.warmup + args.runs):
            floor = await time_floor(floor_server, args.events)
            # Alternate the order so neither endpoint always runs first.
            if round_ % 2 == 0:
                hand = await time_http(client, "/handwritten", args.events)
                ours = await time_http(client, "/chatkit", args.events)
            else:
                ours = await time_http(client, "/chatkit", args.events)
                hand = await time_http(client, "/handwritten", args.events)
            if round_ >= args.warmup:
                samples["floor"].append(floor)
                samples["handwritten"].append(hand)
                samples["chatkit_kit"].append(ours)

    def median(name: str, field: str) -> float:
        return statistics.median([getattr(sample, field) for sample in samples[name]])

    def paired(name: str, reference: str, field: str) -> float:
        """Median over rounds of the ratio within a round: drift in machine load cancels out."""
        pairs = zip(samples[name], samples[reference], strict=True)
        return statistics.median([getattr(a, field) / getattr(b, field) for a, b in pairs])

    print(
        f"\nChatKit endpoint, {args.events}-event stream, uvicorn on loopback, median of "
        f"{args.runs} runs; ratios are medians of per-round ratios"
    )
    header = (
        f"{'endpoint':31} {'wall/event':>10} {'srv CPU/event':>13} {'wall vs hand':>12} "
        f"{'CPU vs hand':>11} {'wall vs floor':>13} {'CPU vs floor':>12}"
    )
    print(header)
    print("-" * len(header))
    for label, name in [
        ("process() in process (floor)", "floor"),
        ("hand-written StreamingResponse", "handwritten"),
        ("chatkit_kit.asgi", "chatkit_kit"),
    ]:
        wall, cpu = median(name, "wall") * 1e6, median(name, "cpu") * 1e6
        print(
            f"{label:31} {wall:>7.1f} us {cpu:>10.1f} us"
            f" {paired(name, 'handwritten', 'wall'):>11.3f}x"
            f" {paired(name, 'handwritten', 'cpu'):>10.3f}x"
            f" {paired(name, 'floor', 'wall'):>12.2f}x {paired(name, 'floor', 'cpu'):>11.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="SSE events per stream")
    parser.add_argument("--runs", type=int, default=21, help="measured streams per endpoint")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured streams first")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args()  # nox -s bench passes the same posargs to every script
    if args.events <= FIXED_EVENTS:
        parser.error(f"--events must be more than {FIXED_EVENTS}")
    if args.serve:
        serve(args.events)
        return
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", "--events", str(args.events)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        asyncio.run(run(args, port))
    finally:
        child.terminate()
        child.wait(timeout=10)


if __name__ == "__main__":
    main()
