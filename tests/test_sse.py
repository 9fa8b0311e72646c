"""How the endpoint writes a stream: frames ready together in one `send`, each one without delay.

These drive `EventStream` with a recording ASGI `send` and count messages; the HTTP behaviour
(status codes, keepalive, disconnects) is tested over real HTTP in test_asgi.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pytest
from chatkit.server import StreamingResult

from chatkit_kit._sse import MAX_BATCH_EVENTS, EventStream, RequestInfo


def frame(n: int) -> bytes:
    return b'data: {"type":"progress_update","text":"' + str(n).encode() + b'"}\n\n'


class Recorder:
    """An ASGI `send` that records the body messages (and can fail like a closed socket)."""

    def __init__(self, fail_on_body: int | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail_on_body = fail_on_body

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == "http.response.body"]

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.body" and self.fail_on_body == len(self.bodies):
            raise OSError("connection reset")
        self.messages.append(message)


async def run_stream(
    generator: AsyncGenerator[bytes, None], send: Recorder, keepalive: float | None = None
) -> None:
    stream = EventStream(
        {"type": "http"},
        send,
        StreamingResult(generator),
        RequestInfo(op="threads.create", thread_id="thr_1"),
        keepalive=keepalive,
    )
    await stream.run()


def frames_of(bodies: Sequence[dict[str, Any]]) -> list[bytes]:
    data = b"".join(body["body"] for body in bodies)
    return [part + b"\n\n" for part in data.split(b"\n\n") if part]


@pytest.mark.parametrize("keepalive", [None, 15.0])
async def test_frames_produced_together_go_out_in_one_send(keepalive: float | None) -> None:
    async def burst() -> AsyncGenerator[bytes, None]:
        for n in range(10):
            yield frame(n)

    send = Recorder()
    await run_stream(burst(), send, keepalive)
    assert send.messages[0]["type"] == "http.response.start"
    assert len(send.bodies) == 1  # all ten frames, in the message that ends the body
    assert send.bodies[0]["more_body"] is False
    assert frames_of(send.bodies) == [frame(n) for n in range(10)]


@pytest.mark.parametrize("keepalive", [None, 15.0])
async def test_each_frame_is_sent_before_the_next_is_produced_when_the_stream_waits(
    keepalive: float | None,
) -> None:
    send = Recorder()
    sent_before: list[int] = []

    async def waits() -> AsyncGenerator[bytes, None]:
        for n in range(5):
            sent_before.append(len(send.bodies))
            yield frame(n)
            await asyncio.sleep(0)  # the next event is not ready: like a model's next read

    await run_stream(waits(), send, keepalive)
    # Frame n was written before the stream went on to produce frame n + 1: no added latency.
    assert sent_before == [0, 1, 2, 3, 4]
    assert [len(frames_of([b])) for b in send.bodies] == [1, 1, 1, 1, 1, 0]
    assert frames_of(send.bodies) == [frame(n) for n in range(5)]


async def test_bursts_between_waits_are_one_send_each() -> None:
    async def bursts() -> AsyncGenerator[bytes, None]:
        n = 0
        for size in (3, 1, 4, 2):
            for _ in range(size):
                yield frame(n)
                n += 1
            await asyncio.sleep(0)

    send = Recorder()
    await run_stream(bursts(), send)
    assert [len(frames_of([b])) for b in send.bodies] == [3, 1, 4, 2, 0]
    assert frames_of(send.bodies) == [frame(n) for n in range(10)]


async def test_a_long_burst_is_written_in_bounded_batches() -> None:
    total = 3 * MAX_BATCH_EVENTS + 8

    async def long_burst() -> AsyncGenerator[bytes, None]:
        for n in range(total):
            yield frame(n)

    send = Recorder()
    await run_stream(long_burst(), send)
    sizes = [len(frames_of([b])) for b in send.bodies]
    assert max(sizes) <= MAX_BATCH_EVENTS
    assert len(sizes) >= 4
    assert frames_of(send.bodies) == [frame(n) for n in range(total)]


async def test_a_failed_write_cancels_the_stream_inside_its_generator() -> None:
    cancelled: list[int] = []

    async def waits() -> AsyncGenerator[bytes, None]:
        n = 0
        try:
            while True:
                yield frame(n)
                n += 1
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            cancelled.append(n)  # where upstream's handle_stream_cancelled would run
            raise

    send = Recorder(fail_on_body=2)
    await asyncio.wait_for(run_stream(waits(), send), 10)
    assert len(send.bodies) == 2
    assert len(cancelled) == 1
    assert frames_of(send.bodies) == [frame(0), frame(1)]


async def test_a_failure_after_the_start_ends_with_the_frames_before_it_and_an_error() -> None:
    async def fails() -> AsyncGenerator[bytes, None]:
        yield frame(0)
        yield frame(1)
        raise RuntimeError("model went away")

    send = Recorder()
    await run_stream(fails(), send)
    frames = frames_of(send.bodies)
    assert frames[:2] == [frame(0), frame(1)]
    assert b'"type":"error"' in frames[2]
    assert len(frames) == 3
    assert send.bodies[-1]["more_body"] is False
