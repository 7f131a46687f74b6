"""Readiness and the figures read at scrape time: whether the database, its schema, Redis and
the graphs are there, and how long the queue is."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from stead.broker import Broker
from stead.graphs import GraphRegistry
from stead.observability.metrics import METRICS, QueueFigures
from stead.storage import Database

logger = logging.getLogger(__name__)

# A probe answers within this, whatever a store does.
CHECK_TIMEOUT_SECONDS = 2.0


class Health:
    def __init__(self, db: Database, broker: Broker, graphs: GraphRegistry, *, redis: bool) -> None:
        self._db = db
        self._broker = broker
        self._graphs = graphs
        self._redis = redis

    async def database_answers(self) -> bool:
        return await _answers(self._db.ping)

    async def readiness(self) -> dict[str, str]:
        """Each check and "ok", or what is wrong with it."""
        checks: dict[str, str] = {}
        database = await _failure(self._db.ping)
        checks["database"] = database or "ok"
        if database is None:
            current = await _failure(self._schema_is_current)
            checks["schema"] = current or "ok"
        if self._redis:
            checks["redis"] = await _failure(self._broker.ping) or "ok"
        checks["graphs"] = "ok" if self._graphs.graph_ids else "none loaded"
        return checks

    async def _schema_is_current(self) -> None:
        if not await self._db.is_current():
            raise RuntimeError("behind; run 'stead migrate'")

    async def refresh_metrics(self) -> QueueFigures:
        """Set the gauges that are read, not counted; the queue's comes from the database, so
        every replica reports the whole queue (zero when the database does not answer)."""
        read = await self._queue_figures()
        queue = read or QueueFigures(0, 0, None)
        METRICS.set_queue(queue)
        METRICS.database_up.set(1 if read is not None else 0)
        METRICS.redis_up.set(1 if not self._redis or await _answers(self._broker.ping) else 0)
        in_use, capacity = self._db.pool_usage()
        METRICS.db_pool_in_use.set(in_use)
        METRICS.db_pool_size.set(capacity)
        return queue

    async def _queue_figures(self) -> QueueFigures | None:
        async def read() -> dict[str, tuple[int, datetime | None]]:
            async with self._db.autocommit() as tx:
                return await tx.runs.queue_figures()

        try:
            figures = await asyncio.wait_for(read(), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure to read means "the database is down" here
            logger.debug("queue figures unavailable: %r", exc)
            return None
        pending, oldest = figures.get("pending", (0, None))
        running, _ = figures.get("running", (0, None))
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else None
        return QueueFigures(pending, running, max(age, 0.0) if age is not None else None)


async def _answers(check: Callable[[], Awaitable[None]]) -> bool:
    return await _failure(check) is None


async def _failure(check: Callable[[], Awaitable[None]]) -> str | None:
    """None when `check` passes in time, else why not, in a few words."""
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    except Exception as exc:  # a probe reports every failure, whatever raised it
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
    return None
