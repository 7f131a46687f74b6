"""The lease reaper: runs whose worker stopped renewing their lease go back to the queue.

A worker renews its runs' leases while it executes them; one that dies (SIGKILL, lost machine,
lost database) stops renewing. After BG_JOB_MAX_RETRIES attempts a run ends `error` instead, and
its thread is settled, so no run is lost and no thread stays `busy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from stead import serde
from stead.broker import Broker, StreamEvent
from stead.broker.base import END
from stead.observability.metrics import METRICS
from stead.services.assistants import now_utc
from stead.services.thread_status import settle_thread
from stead.storage import Database
from stead.worker.executor import publish_run_events

logger = logging.getLogger("stead.worker")

_BATCH = 100


class LeaseReaper:
    def __init__(
        self, db: Database, broker: Broker, *, max_attempts: int, interval_seconds: float
    ) -> None:
        self._db = db
        self._broker = broker
        self._max_attempts = max_attempts
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="stead-lease-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.reap()
            except Exception:
                logger.exception("reaping expired leases failed")
            await asyncio.sleep(self._interval)

    async def reap(self) -> None:
        now = now_utc()
        failed: list[tuple[dict[str, Any], dict[str, str]]] = []
        released = 0
        others_waiting = False
        async with self._db.transaction() as tx:
            for run in await tx.runs.expired_leases(now, _BATCH):
                run_id, attempt = run["run_id"], run["attempt"]
                if attempt < self._max_attempts:
                    released += await tx.runs.release(run_id, attempt, now)
                    continue
                METRICS.attempts.labels("exceeded_max").inc()
                if await tx.runs.finish_attempt(run_id, attempt, "error", now):
                    error = {
                        "error": "RunAttemptsExceeded",
                        "message": f"Run {run_id} exceeded max attempts ({attempt}): "
                        "its worker stopped before finishing it",
                    }
                    others_waiting |= await settle_thread(
                        tx, run["thread_id"], run_id, now, failed=True, error=error
                    )
                    failed.append((run, error))
        for run, error in failed:
            logger.warning("run %s failed after %d attempts", run["run_id"], run["attempt"])
            await self._end(run, StreamEvent("error", serde.dumps(error)))
        if released:
            METRICS.attempts.labels("retried").inc(released)
            logger.info("returned %d run(s) with expired leases to the queue", released)
        if released or others_waiting:
            await self._broker.wake_workers()

    async def _end(self, run: dict[str, Any], error: StreamEvent) -> None:
        await publish_run_events(self._broker, run, [error, END])
