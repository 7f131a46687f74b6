"""The process's "server is stopping" signal, which long-lived responses watch to end at once.

Uvicorn runs the lifespan shutdown (which hands runs back to the queue) only once every open
connection has closed, so a stream that waited for its run, or for the lifespan, would hold the
process for the whole grace period. The server sets `server_shutdown` as soon as it stops
listening; `sse_response` and `keepalive_json_response` end then, and any other long-lived
response must too: race its work against `server_shutdown.future()`.
"""

from __future__ import annotations

import asyncio
import logging


class ShutdownSignal:
    """Set once, when the server stops listening, before it waits for open connections."""

    def __init__(self) -> None:
        self._begun = False
        self._future: asyncio.Future[None] | None = None

    @property
    def begun(self) -> bool:
        return self._begun

    def begin(self) -> None:
        self._begun = True
        if self._future is not None and not self._future.done():
            self._future.set_result(None)

    def future(self) -> asyncio.Future[None]:
        """Done once the server stops listening: a response races its work against it in
        `asyncio.wait` without a task of its own (a task per request cost a few percent of a
        run's CPU). Shared by every waiter on the loop, so never cancel it."""
        loop = asyncio.get_running_loop()
        if self._future is None or self._future.get_loop() is not loop:
            self._future = loop.create_future()
            if self._begun:
                self._future.set_result(None)
        return self._future


# One per process: signals stop the process, whatever app it serves.
server_shutdown = ShutdownSignal()


class CutShort(Exception):
    """Raised by a response body that ends for shutdown without its last chunk: the client sees
    the connection drop, which the SDKs answer by reconnecting to the response's Location."""


class CutShortLogFilter(logging.Filter):
    """Uvicorn logs every response that ends incomplete as an error; at shutdown those are ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        incomplete = record.getMessage() == "ASGI callable returned without completing response."
        return not (incomplete and server_shutdown.begun)
