"""The queue loop: claim due runs while there are free slots, execute each in its own task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from stead.broker import Broker
from stead.observability.logs import log_context, run_ids
from stead.observability.metrics import METRICS
from stead.services.assistants import now_utc
from stead.storage import Database
from stead.worker.executor import RunExecutor

logger = logging.getLogger("stead.worker")

# Wake-ups come through the broker; this only bounds how long a missed one can delay a run.
_IDLE_RECHECK_SECONDS = 5.0
# More than the wake-ups Redis keeps (stead.broker.redis): the runs a stale one can name.
_STARTED_RUNS_REMEMBERED = 1024


class RunQueue:
    """Claims due runs into its slots; also takes runs created in this process as they are
    created (stead.services.runs.LocalWorker)."""

    def __init__(
        self,
        db: Database,
        broker: Broker,
        executor: RunExecutor,
        slots: int,
        lease: timedelta,
    ) -> None:
        self._db = db
        self._broker = broker
        self._executor = executor
        self.lease = lease
        self._slots = asyncio.Semaphore(slots)
        self._wake_ups = WakeUps(broker)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._claim_loop(), name="stead-run-queue")

    async def stop(self, grace_seconds: float) -> None:
        """Stop claiming; let in-flight runs finish within the grace period, then requeue them."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        in_flight = list(self._running.values())
        if in_flight:
            logger.info("waiting up to %gs for %d run(s)", grace_seconds, len(in_flight))
            _, unfinished = await asyncio.wait(in_flight, timeout=grace_seconds)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)

    async def _claim_loop(self) -> None:
        while not self._stopping:
            await self._slots.acquire()
            # Every free slot: one claim serves all the runs that fell due since the last one.
            wanted = 1
            while not self._slots.locked():
                await self._slots.acquire()
                wanted += 1
            started, next_due = await self._start_due(wanted)
            if started < wanted:
                # Nothing else was due: a claim now would find nothing until the next wake-up
                # (a new run, or a run ending and freeing its thread) or the next delayed run.
                await self._wake_ups.wait(_idle_timeout(next_due))

    async def _start_due(self, wanted: int) -> tuple[int, datetime | None]:
        """Claim up to `wanted` runs and start them: how many started, and when the next delayed
        run falls due. The claimed rows stay in this frame only, not in the claim loop's while it
        waits: a run's input (megabytes, at times) is freed with the run."""
        runs, next_due = await self._claim(wanted)
        for _ in range(wanted - len(runs)):
            self._slots.release()
        for run in runs:
            self.start_claimed(run)
        return len(runs), next_due

    async def reserve_slot(self) -> bool:
        # Only a slot nobody waits for: while the claim loop holds or awaits the free ones,
        # runs already queued come first.
        if self._stopping or self._slots.locked():
            return False
        await self._slots.acquire()  # free: returns at once, without yielding
        return True

    def release_slot(self) -> None:
        self._slots.release()

    def start_claimed(self, run: dict[str, Any]) -> None:
        """Execute a claimed run in a slot already held for it."""
        self._wake_ups.started(run["run_id"])
        task = asyncio.create_task(self._execute(run), name=f"run-{run['run_id']}")
        self._running[run["run_id"]] = task
        _observe_claim(run)
        METRICS.set_slots_in_use(len(self._running))

    async def _claim(self, limit: int) -> tuple[list[dict[str, Any]], datetime | None]:
        """The claimed runs and when the next delayed run falls due."""
        try:
            # One statement claims (FOR UPDATE SKIP LOCKED holds its rows while it runs): no
            # BEGIN and COMMIT around it on PostgreSQL.
            async with self._db.autocommit() as tx:
                return await tx.runs.claim_due(now_utc(), self.lease, limit)
        except Exception:
            # Includes the unique-index race on one-running-run-per-thread: try again shortly.
            logger.exception("claiming a run failed")
            await asyncio.sleep(0.1)
            return [], None

    async def _execute(self, run: dict[str, Any]) -> None:
        others_waiting = True
        with log_context(run_ids(run)):
            try:
                others_waiting = await self._executor.execute(run)
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.exception("run %s crashed the executor", run["run_id"])
            finally:
                self._running.pop(run["run_id"], None)
                METRICS.set_slots_in_use(len(self._running))
                self._slots.release()
                # Runs queued behind this one on its thread may be claimed now; any other due
                # run was claimed already, or waits for a slot this release gives back.
                if others_waiting and not self._stopping:
                    await self._broker.wake_workers()


class WakeUps:
    """The queue's wake-ups, less the stale ones. The API wakes the workers for each run it
    creates, and a claim takes every run due: the wake-up for a run an earlier claim took then
    finds nothing, and cost a claim and a read of the next delayed run (0.84 of each per run at
    16 clients on PostgreSQL, bench/README.md). A wake-up naming a run this worker started is
    skipped."""

    def __init__(self, broker: Broker, remembered: int = _STARTED_RUNS_REMEMBERED) -> None:
        self._broker = broker
        self._remembered = remembered
        # Insertion-ordered: the oldest goes first when full.
        self._started: dict[str, None] = {}

    def started(self, run_id: str) -> None:
        self._started[run_id] = None
        if len(self._started) > self._remembered:
            del self._started[next(iter(self._started))]

    async def wait(self, timeout: float) -> None:
        """Return on a wake-up that may bring work, or after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            run_id = await self._broker.wait_for_work(remaining)
            if run_id is None or run_id not in self._started:
                return


def _observe_claim(run: dict[str, Any]) -> None:
    if run["attempt"] == 1:
        # A run's creation time is when it falls due (later for a delayed run).
        waited = (now_utc() - run["created_at"]).total_seconds()
        METRICS.queue_wait.observe(max(waited, 0.0))


def _idle_timeout(next_due: datetime | None) -> float:
    if next_due is None:
        return _IDLE_RECHECK_SECONDS
    return max(0.0, min(_IDLE_RECHECK_SECONDS, (next_due - now_utc()).total_seconds()))
