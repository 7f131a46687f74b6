"""Sweepers: background tasks that remove what has outlived its TTL, every sweep interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("stead.worker")


class Sweeper:
    """Calls `sweep` every `interval_seconds` until stopped; a failed sweep is retried next time.

    `sweep` returns how many things it removed, for the log.
    """

    def __init__(
        self, what: str, interval_seconds: float, sweep: Callable[[], Awaitable[int]]
    ) -> None:
        self._what = what
        self._interval = interval_seconds
        self._sweep = sweep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"stead-sweep-{self._what}")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                swept = await self._sweep()
            except Exception:
                logger.exception("sweeping expired %s failed", self._what)
                continue
            if swept:
                logger.info("swept %d expired %s", swept, self._what)
