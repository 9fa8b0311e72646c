"""Server-sent events for the ChatKit endpoint: one `StreamingResult` sent over ASGI.

`EventStream` commits to a 200 only once the first event exists, ends a failed stream with a
ChatKit error event, keeps a silent stream alive with SSE comment lines, and cancels upstream's
generator so that its `handle_stream_cancelled` runs; `wait_for_disconnect` is the watcher the
endpoint races it against.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatkit.errors import ErrorCode
from chatkit.server import StreamingResult
from chatkit.types import ErrorEvent

from ._http_errors import log_failure, reply_for, send_error

if TYPE_CHECKING:  # pragma: no cover
    from starlette.types import Message, Receive, Scope, Send

logger = logging.getLogger("chatkit_kit.asgi")

SSE_HEADERS = (
    (b"content-type", b"text/event-stream"),
    # no-transform: proxies must not compress or rewrite the stream (compression buffers events).
    (b"cache-control", b"no-cache, no-transform"),
    # nginx (and proxies copying its convention) must not buffer the response.
    (b"x-accel-buffering", b"no"),
)

KEEPALIVE_COMMENT = b": keepalive\n\n"
"""The SSE comment sent while a stream is silent; SSE clients ignore comment lines."""


def error_event_chunk(*, allow_retry: bool) -> bytes:
    """The SSE frame of a ChatKit `stream.error` event."""
    event = ErrorEvent(code=ErrorCode.STREAM_ERROR, allow_retry=allow_retry)
    return b"data: " + event.model_dump_json(by_alias=True, exclude_none=True).encode() + b"\n\n"


_RETRYABLE_ERROR_CHUNK = error_event_chunk(allow_retry=True)
_FINAL_ERROR_CHUNK = error_event_chunk(allow_retry=False)


@dataclass
class RequestInfo:
    """The ChatKit operation being served, for log records and error replies."""

    op: str
    thread_id: str | None
    upload_url: str | None = None
    upstream_error: BaseException | None = None
    """The exception upstream last logged after turning it into an error event."""


def thread_id_from_event(chunk: bytes) -> str | None:
    """The thread id of a `thread.created` SSE frame, if it is one."""
    try:
        event = json.loads(chunk.removeprefix(b"data: "))
        thread_id = event["thread"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
    return thread_id if isinstance(thread_id, str) else None


async def wait_for_disconnect(receive: Receive) -> None:
    """Return once the client has gone away (`http.disconnect`)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class _Keepalive:
    """Sends `KEEPALIVE_COMMENT` whenever nothing was sent for `interval` seconds.

    The stream marks itself `sending` around each event and the timer skips a beat while it is;
    the stream waits for a comment already on its way (`idle`) before it sends. So a comment never
    interleaves with an event, nothing follows the final message, and an event costs no lock,
    only two attribute writes and a clock read.
    """

    def __init__(self, send: Send, interval: float) -> None:
        self.send = send
        self.interval = interval
        self.loop = asyncio.get_running_loop()
        self.last_sent = self.loop.time()
        self.sending = False
        self.idle = asyncio.Event()
        self.idle.set()
        self.closed = False
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self.closed:
            delay = self.last_sent + self.interval - self.loop.time()
            if delay > 0 or self.sending:
                await asyncio.sleep(delay if delay > 0 else self.interval)
                continue
            self.idle.clear()
            try:
                await self.send(
                    {"type": "http.response.body", "body": KEEPALIVE_COMMENT, "more_body": True}
                )
            except OSError:  # the client went away; the disconnect watcher takes it from here
                return
            finally:
                self.idle.set()
            self.last_sent = self.loop.time()

    async def stop(self) -> None:
        """Stop the timer, after the comment it may be sending."""
        self.closed = True
        await self.idle.wait()
        self.task.cancel()


MAX_BATCH_EVENTS = 64
"""At most this many SSE frames go out in one write."""
MAX_BATCH_BYTES = 64 * 1024
"""A batch that reaches this many bytes is written before the stream produces more."""
MAX_BATCH_AGE = 0.002
"""Seconds: a frame waits at most this long for the frames produced after it (a stream that
produces many events without ever waiting, e.g. CPU-heavy ones, still flushes regularly)."""


class _BatchWriter:
    """Writes the frames a stream produces, those that are ready together in one ASGI message.

    The stream `put`s each frame and goes on producing; this writer's task runs at the event
    loop's next turn, i.e. as soon as the stream waits for anything (its next event is not
    ready yet), and sends every frame queued by then as one message. So a frame produced while
    nothing else is pending goes out before the stream produces the next one, with no added
    delay, and a burst of frames produced without waiting (text deltas a model returned in one
    read, upstream's events around an item) costs one write instead of one per frame. The
    stream waits for the writer (`drain`) when a batch is full or old, and at its end; a write
    that fails (the client went away) is raised from its next `put` or `drain`.
    """

    def __init__(self, send: Callable[[bytes], Awaitable[None]]) -> None:
        self._send = send
        self.loop = asyncio.get_running_loop()
        self.pending: list[bytes] = []
        self.size = 0
        self.started = 0.0
        self.busy = False
        self.error: Exception | None = None
        self._wake: asyncio.Future[None] = self.loop.create_future()
        self._drained: asyncio.Future[None] | None = None
        self.task = asyncio.ensure_future(self._run())

    def put(self, frame: bytes) -> bool:
        """Queue `frame`; True when the batch is full and the stream should `await drain()`."""
        if self.error is not None:
            raise self.error
        pending = self.pending
        pending.append(frame)
        self.size += len(frame)
        if len(pending) == 1:
            self.started = self.loop.time()
            if not self._wake.done():
                self._wake.set_result(None)
            return False
        return (
            len(pending) >= MAX_BATCH_EVENTS
            or self.size >= MAX_BATCH_BYTES
            or self.loop.time() - self.started >= MAX_BATCH_AGE
        )

    async def drain(self) -> None:
        """Wait until every queued frame was sent."""
        if self.pending or self.busy:
            if self._drained is None:
                self._drained = self.loop.create_future()
            await self._drained
        if self.error is not None:
            raise self.error

    async def close(self) -> bytes:
        """Stop writing; the frames still queued, for the stream's last message."""
        if self.busy:
            await self.drain()
        if self.error is not None:
            raise self.error
        self.task.cancel()
        tail = self.pending
        self.pending = []
        return tail[0] if len(tail) == 1 else b"".join(tail)

    async def _run(self) -> None:
        try:
            while True:
                await self._wake
                self._wake = self.loop.create_future()
                self.busy = True
                while self.pending:
                    batch = self.pending
                    self.pending = []
                    self.size = 0
                    await self._send(batch[0] if len(batch) == 1 else b"".join(batch))
                self.busy = False
                self._release()
        except Exception as exc:  # OSError: the client went away; else a bug to re-raise
            self.error = exc
            self.busy = False
            self._release()

    def _release(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)


class EventStream:
    """Sends one `StreamingResult` as server-sent events; cancels it at most once."""

    def __init__(
        self,
        scope: Scope,
        send: Send,
        result: StreamingResult,
        info: RequestInfo,
        *,
        keepalive: float | None = None,
    ) -> None:
        self.scope = scope
        self._send = send
        self.stream = aiter(result)
        self.info = info
        self.keepalive_interval = keepalive
        self._keepalive: _Keepalive | None = None
        self._writer: _BatchWriter | None = None
        self.cancelling = False

    def cancel(self, task: asyncio.Task[None]) -> None:
        """Cancel the task running `run()`, unless a cancellation is already under way.

        A second cancellation would interrupt upstream's `handle_stream_cancelled` mid-write.
        """
        if not self.cancelling:
            self.cancelling = True
            task.cancel()

    async def cancel_inside(self) -> None:
        """Resume the stream parked at `yield` and cancel it at its next await.

        Cancelling a task whose generator sits at `yield` never reaches the generator (closing
        it raises GeneratorExit instead), so upstream's `except CancelledError` in
        `_process_events`, which stores the partially streamed assistant message, would not run.
        """
        task = asyncio.current_task()
        assert task is not None
        self.cancelling = False  # the cancellation that got us here was spent outside the stream
        self.cancel(task)
        try:
            while True:
                await self.stream.__anext__()
        except (asyncio.CancelledError, StopAsyncIteration):
            pass
        except Exception:
            logger.debug("ChatKit stream failed while being cancelled", exc_info=True)

    async def send(self, body: bytes) -> None:
        """Send one part of the response body, never at the same time as a keepalive comment."""
        message: Message = {"type": "http.response.body", "body": body, "more_body": True}
        keepalive = self._keepalive
        if keepalive is None:
            await self._send(message)
            return
        if not keepalive.idle.is_set():
            await keepalive.idle.wait()
        keepalive.sending = True
        try:
            await self._send(message)
        finally:
            keepalive.sending = False
        keepalive.last_sent = keepalive.loop.time()

    async def finish(self) -> None:
        """End the response body, with the frames still queued (after stopping the keepalive)."""
        tail = b""
        if self._writer is not None:
            tail = await self._writer.close()
        if self._keepalive is not None:
            await self._keepalive.stop()
        await self._send({"type": "http.response.body", "body": tail, "more_body": False})

    async def _upstream_error_event(
        self, next_chunk: Callable[[], Awaitable[bytes]]
    ) -> tuple[bytes, list[bytes], bool]:
        """Upstream's error event for an exception in `respond()`, with the right `allow_retry`.

        Upstream offers a retry whatever the exception was, and logs the exception right after
        yielding the event; read on to see it (the endpoint's log filter keeps it on the request),
        then withdraw the retry when none can succeed (the same exceptions that are 4xx before a
        stream starts, and database configuration errors). Returns the event, the chunks read
        meanwhile, and whether the stream ended.
        """
        info = self.info
        held: list[bytes] = []
        ended = False
        if info.upstream_error is None:
            try:
                held.append(await next_chunk())
            except StopAsyncIteration:
                ended = True
            except Exception:  # pragma: no cover - upstream only saves the thread after it
                logger.exception("ChatKit stream failed after its error event")
                ended = True
        error, info.upstream_error = info.upstream_error, None
        if error is not None and not reply_for(error, op=info.op).retryable:
            return _FINAL_ERROR_CHUNK, held, ended
        return _RETRYABLE_ERROR_CHUNK, held, ended

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if self._writer is not None:
                self._writer.task.cancel()
            if self._keepalive is not None:
                self._keepalive.closed = True
                self._keepalive.task.cancel()

    async def _run(self) -> None:
        info = self.info
        # Commit to a 200 only once the first event exists, so that a missing thread (or any
        # failure before the first event) still gets a proper status code.
        try:
            first: bytes | None = await self.stream.__anext__()
        except StopAsyncIteration:
            first = None
        except Exception as exc:
            reply = reply_for(exc, op=info.op, upload_url=info.upload_url)
            log_failure(
                logger,
                reply,
                exc,
                "ChatKit stream failed before its first event (op=%s, thread_id=%s)",
                info.op,
                info.thread_id,
            )
            await send_error(self.scope, self._send, reply)
            return

        message: Message = {
            "type": "http.response.start",
            "status": 200,
            "headers": list(SSE_HEADERS),
        }
        try:
            await self._send(message)
        except asyncio.CancelledError:
            await self.cancel_inside()
            raise
        except OSError:  # ASGI 2.4 servers report a client that went away this way
            await self.cancel_inside()
            return
        if first is None:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if info.thread_id is None:
            info.thread_id = thread_id_from_event(first)
        if self.keepalive_interval:
            self._keepalive = _Keepalive(self._send, self.keepalive_interval)
        writer = self._writer = _BatchWriter(self.send)
        put = writer.put
        put(first)
        next_chunk = self.stream.__anext__
        while True:
            try:
                chunk = await next_chunk()
            except StopAsyncIteration:
                break
            except Exception as exc:
                reply = reply_for(exc, op=info.op, upload_url=info.upload_url)
                log_failure(
                    logger,
                    reply,
                    exc,
                    "ChatKit stream failed after it started (op=%s, thread_id=%s)",
                    info.op,
                    info.thread_id,
                )
                try:
                    put(_RETRYABLE_ERROR_CHUNK if reply.retryable else _FINAL_ERROR_CHUNK)
                except OSError:
                    return
                break
            if chunk == _RETRYABLE_ERROR_CHUNK:
                chunk, held, ended = await self._upstream_error_event(next_chunk)
                if held or ended:
                    try:
                        put(chunk)
                    except OSError:
                        await self.cancel_inside()
                        return
                    if ended:
                        break
                    chunk = held[0]
            # The hot path: queue the frame; the writer sends it, with whatever else the stream
            # produces before it next waits, as soon as this task waits for anything.
            try:
                if put(chunk):
                    await writer.drain()
            except asyncio.CancelledError:
                await self.cancel_inside()
                raise
            except OSError:
                await self.cancel_inside()
                return
        try:
            await self.finish()
        except OSError:
            return
