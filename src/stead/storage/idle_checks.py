"""Pooled PostgreSQL connections are checked before use only once they have sat idle.

Checking on every checkout costs a round trip each time, a dozen per run. A connection returned
moments ago was alive then; one that sat idle may have been cut by a database restart or a
proxy's idle timeout, so that one is checked (and replaced when dead). A restart within the
last moments is met by the first statement failing instead: a request answers 503 and a run's
checkpoint write sends the run back to the queue, as during any outage. The savers' pool
applies the same rule (stead.storage.postgres_engine.IdleConnectionCheck).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

CHECK_AFTER_IDLE_SECONDS = 2.0
_RETURNED_AT = "stead_returned_at"


def check_engine_connections_after_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's pre-ping, done only for a connection idle for CHECK_AFTER_IDLE_SECONDS."""
    dialect = engine.sync_engine.dialect
    pool = engine.sync_engine.pool

    def mark_returned(_dbapi_conn: Any, record: Any) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    def ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if not idle_too_long(record.info.get(_RETURNED_AT)):
            return
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_conn, None):
                raise
            # The pool replaces the connection and tries the checkout again.
            raise sa.exc.DisconnectionError(str(exc)) from exc

    event.listen(pool, "connect", mark_returned)
    event.listen(pool, "checkin", mark_returned)
    event.listen(pool, "checkout", ping_if_idle)


def idle_too_long(returned_at: float | None) -> bool:
    return returned_at is None or time.monotonic() - returned_at >= CHECK_AFTER_IDLE_SECONDS
