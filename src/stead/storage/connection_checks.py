"""What a pooled PostgreSQL connection goes through at checkout, in SQLAlchemy's pool and in
psycopg's pools alike.

- It is checked only once it has sat idle. Checking on every checkout costs a round trip each
  time, a dozen per run. A connection returned moments ago was alive then; one that sat idle may
  have been cut by a database restart or a proxy's idle timeout, so that one is checked (and
  replaced when dead). A restart within the last moments is met by the first statement failing
  instead: a request answers 503 and a run's checkpoint write sends the run back to the queue,
  as during any outage.
- It is replaced once it has moved more than its share (stead.storage.transferred_bytes): libpq
  keeps the buffers of its largest messages for the connection's life. It is closed as it is
  returned (not at its next checkout: a failed check in psycopg's pool makes the caller wait a
  second before the next try, and an idle pool would keep the buffers).
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import event

from stead.storage.transferred_bytes import transferred_too_much

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

CHECK_AFTER_IDLE_SECONDS = 2.0
_RETURNED_AT = "stead_returned_at"


def check_engine_connections(engine: AsyncEngine) -> None:
    """SQLAlchemy's pre-ping, done only for a connection idle for CHECK_AFTER_IDLE_SECONDS, and
    the replacement of a connection that moved too much."""
    dialect = engine.sync_engine.dialect
    pool = engine.sync_engine.pool

    def mark_connected(_dbapi_conn: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def check_in(dbapi_conn: Any, record: Any) -> None:
        # An invalidated record stays in the pool and connects anew at its next checkout.
        if dbapi_conn is not None and transferred_too_much(dbapi_conn.driver_connection):
            record.invalidate()
        record.info[_RETURNED_AT] = time.monotonic()

    def check_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if not idle_too_long(record.info.get(_RETURNED_AT)):
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_conn, None):
                raise
            # The pool replaces the connection and tries the checkout again.
            raise sa.exc.DisconnectionError(str(exc)) from exc

    event.listen(pool, "connect", mark_connected)
    event.listen(pool, "checkin", check_in)
    event.listen(pool, "checkout", check_out)


class CheckedConnectionPool(AsyncConnectionPool[Any]):
    """psycopg's pool, with the same rules: `check` at checkout, and the replacement on return.

    The return's check is made in `putconn`, in the caller's task, not as the pool's `reset`
    callback: with one, the pool hands every return to a task of its own (a queue, a wake-up,
    its lock), 4% of a worker's CPU (bench/README.md)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._returned_at: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        super().__init__(*args, configure=self._connected, check=self._check, **kwargs)

    async def putconn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if transferred_too_much(conn):
            # Returned closed, it is dropped and replaced.
            _REPLACED.add(conn)
            await conn.close()
        else:
            self._returned_at[conn] = time.monotonic()
        await super().putconn(conn)

    async def _connected(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._returned_at[conn] = time.monotonic()

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if idle_too_long(self._returned_at.get(conn)):
            await AsyncConnectionPool.check_connection(conn)


_REPLACED: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()


class _QuietReplacement(logging.Filter):
    """psycopg's pool warns of a closed connection returned to it; for a connection replaced on
    purpose above, that is no news."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(
            isinstance(arg, psycopg.AsyncConnection) and arg in _REPLACED for arg in args
        )


logging.getLogger("psycopg.pool").addFilter(_QuietReplacement())


def idle_too_long(returned_at: float | None) -> bool:
    return returned_at is None or time.monotonic() - returned_at >= CHECK_AFTER_IDLE_SECONDS
