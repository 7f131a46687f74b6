"""The cron scheduler: every few seconds, claim the crons that are due and start their runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from stead.errors import ApiError
from stead.observability.metrics import METRICS
from stead.services.assistants import now_utc
from stead.services.crons import CronService

logger = logging.getLogger("stead.worker")


class CronScheduler:
    def __init__(self, crons: CronService, interval_seconds: float) -> None:
        self._crons = crons
        self._interval = interval_seconds
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="stead-cron-scheduler")

    async def stop(self) -> None:
        """Let the current tick finish: a cron claimed but not yet started would lose its run."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            await self._tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def _tick(self) -> None:
        try:
            claimed = await self._crons.claim_due(now_utc())
        except Exception:
            logger.exception("claiming due crons failed")
            return
        for cron in claimed:
            await self._start_run(cron)

    async def _start_run(self, cron: dict[str, Any]) -> None:
        try:
            run = await self._crons.start_run(cron)
        except ApiError as exc:
            # E.g. its assistant was deleted, or its thread is busy and the strategy is reject.
            logger.warning("cron %s started no run: %s", cron["cron_id"], exc.detail)
        except Exception:
            logger.exception("cron %s failed to start its run", cron["cron_id"])
        else:
            logger.info("cron %s started run %s", cron["cron_id"], run["run_id"])
            METRICS.cron_firings.inc()
