"""SQLite connections that run each statement on the event loop's own thread.

aiosqlite hands every call to a thread of its own and the result back: two thread switches and a
future per statement. On the embedded default that was a quarter of the server's CPU per run
(py-spy, bench/README.md), for statements that take microseconds. In the embedded default one
process holds each file, in WAL mode, so no statement waits for a lock, and running it in place
costs nothing but its own time. The price: a long statement (a sweep deleting many rows) holds
the event loop for as long as it runs.

The connection keeps aiosqlite's interface, which SQLAlchemy's aiosqlite dialect and LangGraph's
SQLite savers use; only where a call runs changes. That means overriding aiosqlite's private
`_execute`, `_connect`, `stop` and `close` (aiosqlite is pinned; tests/integration/
test_sqlite_inline.py fails if a release changes what they mean).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import aiosqlite

_ITER_CHUNK_SIZE = 64  # aiosqlite's default: rows fetched per step of `async for`


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose worker thread is never started."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect().__await__()

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


def connect(path: str | Path, **options: Any) -> InlineConnection:
    """Like `aiosqlite.connect`: `options` go to `sqlite3.connect`."""

    def connector() -> sqlite3.Connection:
        return sqlite3.connect(str(path), **options)

    return InlineConnection(connector, _ITER_CHUNK_SIZE)
