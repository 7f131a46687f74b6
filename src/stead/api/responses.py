"""Response helpers: orjson bodies, pagination headers, `select`, SSE and keep-alive bodies."""

from __future__ import annotations

import asyncio
import contextlib
from asyncio import FIRST_COMPLETED
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from fastapi import Response
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from stead import serde
from stead.broker import StreamEvent
from stead.errors import Unprocessable
from stead.observability.metrics import METRICS
from stead.shutdown import CutShort, server_shutdown
from stead.storage import Page

HEARTBEAT_SECONDS = 5.0
# A `wait` or `join` whose result is ready this soon is sent whole, with its length; a longer one
# starts a chunked body at once, then keep-alive newlines.
WHOLE_BODY_WITHIN_SECONDS = 1.0
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def json_response(
    body: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(serde.dumps(body), status_code, headers, media_type="application/json")


def no_content(status_code: int = 204) -> Response:
    return Response(status_code=status_code)


def selected(
    items: Iterable[dict[str, Any]], select: list[str] | None, allowed: Iterable[str]
) -> list[dict[str, Any]]:
    rows = list(items)
    if not select:
        return rows
    unknown = sorted(set(select) - set(allowed))
    if unknown:
        raise Unprocessable(f"Unknown field(s) in select: {', '.join(unknown)}")
    return [{key: row[key] for key in select if key in row} for row in rows]


def page_response(page: Page, items: list[dict[str, Any]], offset: int) -> Response:
    headers = {"X-Pagination-Total": str(page.total)}
    next_offset = offset + len(page.rows)
    if page.rows and next_offset < page.total:
        headers["X-Pagination-Next"] = str(next_offset)
    return json_response(items, headers=headers)


def sse_frame(event: StreamEvent) -> bytes:
    frame = b"event: " + _single_line(event.event) + b"\r\ndata: " + event.data + b"\r\n"
    if event.id is not None:
        # After `data:`, as the official server puts it.
        frame += b"id: " + _single_line(event.id) + b"\r\n"
    return frame + b"\r\n"


def _single_line(value: str) -> bytes:
    return value.replace("\r", "").replace("\n", "").encode()


_HEARTBEAT = b": heartbeat\r\n\r\n"


def sse_response(
    events: AsyncIterator[StreamEvent] | AsyncIterator[bytes | StreamEvent],
    headers: dict[str, str],
    on_close: Callable[[], Awaitable[None]],
) -> StreamingResponse:
    """The events as server-sent events (or chunks of frames already made), with heartbeats; when
    the server starts to stop, the stream ends cleanly there (no `end` event): clients of a
    resumable run reconnect elsewhere."""

    async def body() -> AsyncIterator[bytes]:
        METRICS.stream_subscribers.inc()
        try:
            async for item in _with_heartbeat(events, _HEARTBEAT):
                if item is _HEARTBEAT:
                    yield item
                    continue
                frames = item if isinstance(item, bytes) else sse_frame(item)
                METRICS.stream_events.inc(frames.count(b"\r\n\r\n"))
                yield frames
        finally:
            METRICS.stream_subscribers.dec()
            await _run_to_completion(on_close())

    return StreamingResponse(
        body(), media_type="text/event-stream; charset=utf-8", headers={**SSE_HEADERS, **headers}
    )


_KEEPALIVE = b"\n"


def keepalive_json_response(
    result: Awaitable[Any], headers: dict[str, str], on_close: Callable[[], Awaitable[None]]
) -> StreamingResponse:
    """A JSON body computed while the client waits; newlines keep proxies from timing out. When
    the server starts to stop, the body is cut short so that clients ask its Location again."""

    async def body() -> AsyncIterator[bytes]:
        task = asyncio.ensure_future(result)
        stopping = server_shutdown.future()
        try:
            quiet_for = WHOLE_BODY_WITHIN_SECONDS
            while True:
                await asyncio.wait({task, stopping}, timeout=quiet_for, return_when=FIRST_COMPLETED)
                quiet_for = HEARTBEAT_SECONDS
                if task.done():
                    yield serde.dumps(task.result())
                    return
                if stopping.done():
                    raise CutShort
                yield _KEEPALIVE
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await _run_to_completion(on_close())

    return _KeepAliveJSONResponse(body(), media_type="application/json", headers=headers)


class _KeepAliveJSONResponse(StreamingResponse):
    """Sent whole, with its length, when the result comes before the first keep-alive newline
    (most runs): one socket write for the body, where chunks take two. Ends without its last
    chunk when its body raises CutShort."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette's race of the body against the client leaving, in plain asyncio rather than
        # an anyio task group: the same outcome at a fraction of the cost per request.
        sending = asyncio.ensure_future(self.stream_response(send))
        leaving = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait({sending, leaving}, return_when=FIRST_COMPLETED)
        finally:
            for task in (sending, leaving):
                task.cancel()
            await asyncio.wait({sending, leaving})
        if not sending.cancelled() and (error := sending.exception()) is not None:
            raise error

    async def stream_response(self, send: Send) -> None:
        chunks = aiter(self.body_iterator)
        try:
            first = await anext(chunks)
        except CutShort:
            await self._start(send, self.raw_headers)
            return
        if first != _KEEPALIVE:
            await self._start(send, [*self.raw_headers, (b"content-length", b"%d" % len(first))])
            await send({"type": "http.response.body", "body": first})
            async for _ in chunks:  # runs the body's clean-up
                pass
            return
        await self._start(send, self.raw_headers)
        with contextlib.suppress(CutShort):
            await send({"type": "http.response.body", "body": first, "more_body": True})
            async for chunk in chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _start(self, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": headers})


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


_closing: set[asyncio.Future[None]] = set()


async def _run_to_completion(cleanup: Awaitable[None]) -> None:
    """Run cleanup even when the response is being cancelled because the client went away."""
    task = asyncio.ensure_future(cleanup)
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(task)


async def _with_heartbeat(source: AsyncIterator[Any], heartbeat: bytes) -> AsyncIterator[Any]:
    """The source's items, and `heartbeat` after each quiet spell, until the server stops."""
    iterator = source.__aiter__()
    pending: asyncio.Future[Any] | None = None
    stopping = server_shutdown.future()
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait(
                {pending, stopping}, timeout=HEARTBEAT_SECONDS, return_when=FIRST_COMPLETED
            )
            if stopping.done():
                return
            if not done:
                yield heartbeat
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
