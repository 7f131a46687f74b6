"""Uvicorn's HTTP protocol (httptools) with the writes of one event-loop turn sent together, and
a connection accepted just before shutdown answered rather than closed.

Uvicorn writes a response's status line and headers, then its body, in separate socket writes:
each a system call and, with TCP_NODELAY, a packet the client must read on its own. Held until
the end of the loop turn, a small response goes out in one write.

At shutdown, uvicorn closes every connection with no request in progress. One accepted moments
before has its first request on the way: closed, its client sees the connection reset unanswered,
though another replica sharing the port would have served it (a rollout).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# How long a connection still waiting for its first request is kept open once shutdown begins.
FIRST_REQUEST_GRACE_SECONDS = 1.0


class HttpProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol, writing through a CoalescingTransport."""

    _shutting_down = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport))

    def shutdown(self) -> None:
        """A connection that has not yet sent its first request may: that one is answered, then
        closed (uvicorn closes it unanswered)."""
        if self.cycle is not None:
            super().shutdown()
            return
        self._shutting_down = True
        self.loop.call_later(FIRST_REQUEST_GRACE_SECONDS, self._close_if_unasked)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._shutting_down and self.cycle is not None:
            self.cycle.keep_alive = False

    def _close_if_unasked(self) -> None:
        # An upgraded connection (a WebSocket) belongs to another protocol now.
        if self.cycle is None and self.transport.get_protocol() is self:
            self.transport.close()


# Larger writes are passed on one by one: joining them would copy a large body once more.
JOIN_UP_TO_BYTES = 64 * 1024


class CoalescingTransport(asyncio.Transport):
    """A transport whose writes wait for the end of the loop turn, then go out together."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__()
        self._transport = transport
        self._pending: list[bytes | bytearray | memoryview] = []
        self._flush_handle: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        self._pending.append(data)
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        pending, self._pending = self._pending, []
        if self._transport.is_closing():
            return
        if len(pending) > 1 and sum(map(len, pending)) <= JOIN_UP_TO_BYTES:
            pending = [b"".join(pending)]
        for data in pending:
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)
