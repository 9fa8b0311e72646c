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
        """End the response body (after stopping the keepalive timer)."""
        if self._keepalive is not None:
            await self._keepalive.stop()
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

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
            if first is not None:
                if info.thread_id is None:
                    info.thread_id = thread_id_from_event(first)
                await self.send(first)
        except asyncio.CancelledError:
            await self.cancel_inside()
            raise
        except OSError:  # ASGI 2.4 servers report a client that went away this way
            await self.cancel_inside()
            return
        if first is None:
            await self._send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if self.keepalive_interval:
            self._keepalive = _Keepalive(self._send, self.keepalive_interval)

        next_chunk = self.stream.__anext__
        send = self._send
        keepalive = self._keepalive
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
                    await self.send(
                        _RETRYABLE_ERROR_CHUNK if reply.retryable else _FINAL_ERROR_CHUNK
                    )
                except OSError:
                    return
                break
            if chunk == _RETRYABLE_ERROR_CHUNK:
                chunk, held, ended = await self._upstream_error_event(next_chunk)
                try:
                    for body in (chunk, *held):
                        await self.send(body)
                except asyncio.CancelledError:
                    await self.cancel_inside()
                    raise
                except OSError:
                    await self.cancel_inside()
                    return
                if ended:
                    break
                continue
            # `self.send(chunk)`, inlined: this is the per-event hot path.
            part: Message = {"type": "http.response.body", "body": chunk, "more_body": True}
            try:
                if keepalive is None:
                    await send(part)
                else:
                    if not keepalive.idle.is_set():
                        await keepalive.idle.wait()
                    keepalive.sending = True
                    try:
                        await send(part)
                    finally:
                        keepalive.sending = False
                    keepalive.last_sent = keepalive.loop.time()
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
