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
from datetime import datetime
from typing import Any

import httpx
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageContentPartTextDelta,
    AssistantMessageItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemUpdatedEvent,
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
        item = AssistantMessageItem(
            id=self.store.generate_item_id("message", thread, context),
            thread_id=thread.id,
            created_at=datetime.now(),
            content=[],
        )
        yield ThreadItemAddedEvent(item=item)
        for _ in range(self.deltas):
            yield ThreadItemUpdatedEvent(
                item_id=item.id,
                update=AssistantMessageContentPartTextDelta(content_index=0, delta="token "),
            )
        item.content = [AssistantMessageContent(text="token " * self.deltas)]
        yield ThreadItemDoneEvent(item=item)


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
    return app


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


async def time_floor(server: BenchServer) -> tuple[float, int]:
    start = time.perf_counter()
    result = await server.process(REQUEST, Ctx(user_id="bench"))
    assert isinstance(result, StreamingResult)
    count = 0
    async for _ in result:
        count += 1
    return time.perf_counter() - start, count


async def time_http(client: httpx.AsyncClient, path: str) -> tuple[float, int]:
    start = time.perf_counter()
    chunks = []
    async with client.stream("POST", path, content=REQUEST) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            chunks.append(chunk)
    elapsed = time.perf_counter() - start
    return elapsed, b"".join(chunks).count(b"\n\n")


async def run(args: argparse.Namespace, port: int) -> None:
    floor_server = BenchServer(args.events - FIXED_EVENTS)
    samples: dict[str, list[float]] = {"floor": [], "handwritten": [], "chatkit_kit": []}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for round_ in range(args.warmup + args.runs):
            measured = {
                "floor": await time_floor(floor_server),
                # Alternate the order so neither endpoint always runs first.
                **(
                    {
                        "handwritten": await time_http(client, "/handwritten"),
                        "chatkit_kit": await time_http(client, "/chatkit"),
                    }
                    if round_ % 2 == 0
                    else {
                        "chatkit_kit": await time_http(client, "/chatkit"),
                        "handwritten": await time_http(client, "/handwritten"),
                    }
                ),
            }
            for name, (elapsed, count) in measured.items():
                if count != args.events:
                    raise SystemExit(f"{name}: expected {args.events} events, got {count}")
                if round_ >= args.warmup:
                    samples[name].append(elapsed / count)

    median = {name: statistics.median(values) for name, values in samples.items()}

    def paired(name: str, reference: str) -> float:
        """Median over rounds of the ratio within a round: drift in machine load cancels out."""
        pairs = zip(samples[name], samples[reference], strict=True)
        return statistics.median([a / b for a, b in pairs])

    rows = [
        ("process() in process (floor)", "floor"),
        ("hand-written StreamingResponse", "handwritten"),
        ("chatkit_kit.asgi", "chatkit_kit"),
    ]
    print(
        f"\nChatKit endpoint, {args.events}-event stream, uvicorn on loopback, "
        f"median of {args.runs} runs (ratios: median of per-round ratios)"
    )
    header = f"{'endpoint':32} {'per event':>11} {'per stream':>11} {'vs hand-written':>16} "
    header += f"{'vs floor':>9}"
    print(header)
    print("-" * len(header))
    for label, name in rows:
        per_event = median[name]
        print(
            f"{label:32} {per_event * 1e6:>8.2f} us {per_event * args.events * 1e3:>8.2f} ms "
            f"{paired(name, 'handwritten'):>15.3f}x {paired(name, 'floor'):>8.2f}x"
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
