"""Run one claimed run: stream its graph, publish its events, record how it ended."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphInterrupt
from langgraph.types import Command, Send

from stead import serde
from stead.auth.user import AuthUser, run_user
from stead.broker import Broker, CancelSignal, StreamEvent
from stead.broker.base import END
from stead.checkpoints import delete_run_checkpoints
from stead.graphs import GraphRegistry
from stead.observability.metrics import METRICS
from stead.observability.tracing import record_run_outcome, run_span
from stead.protocol.events import is_protocol_run, lifecycle, outcome_events
from stead.services.assistants import now_utc
from stead.services.state import thread_config, thread_fields_from_snapshot
from stead.services.thread_status import end_attempt, settle_thread
from stead.services.webhooks import WebhookSender
from stead.storage import Database
from stead.storage.database import database_errors, is_database_unavailable
from stead.storage.fencing import CheckpointsUnavailable, LeaseLost, writing_as
from stead.worker.batching import BatchWriter
from stead.worker.messages import LegacyMessages
from stead.worker.protocol_stream import stream_protocol_events, thread_event_writer

logger = logging.getLogger("stead.worker")

# Stream modes whose API name differs from LangGraph's.
_LANGGRAPH_MODE = {"messages-tuple": "messages"}


# The status of an attempt whose lease another worker took over: nothing to record.
LEASE_LOST = "lease_lost"
# The status of an attempt cut off from its checkpoints by a database outage: nothing to record,
# the run goes back to the queue and continues from its last checkpoint.
CHECKPOINTS_UNAVAILABLE = "checkpoints_unavailable"
# How often such a run tries to go back to the queue while the database is still away.
_REQUEUE_RETRY_SECONDS = 1.0
# When an attempt first renews its lease (and reads its cancel flag), unless a third of the lease
# is sooner.
FIRST_RENEWAL_SECONDS = 1.0
# The turns of the event loop an answer takes from a run's END to the socket of a client waiting
# in this process (`/wait`, `/join`): the waiter's result, the response's body task, the body sent,
# the transport's flush at the turn's end (stead.http_protocol).
TURNS_TO_ANSWER = 4


async def _let_waiters_answer() -> None:
    """Yield the turns a waiter's answer takes. A run's epilogue (its last log line, metrics,
    a stateless run's checkpoints deleted) would otherwise come first on the one event loop,
    and the client wait for it: 4 to 6% of runs/s at one client (bench/README.md)."""
    for _ in range(TURNS_TO_ANSWER):
        await asyncio.sleep(0)


@dataclass
class Outcome:
    status: str
    error: dict[str, str] | None = None
    snapshot: Any = None
    cancel_action: str | None = None


class RunExecutor:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        graphs: GraphRegistry,
        checkpointer: BaseCheckpointSaver,
        *,
        lease: timedelta,
        timeout_seconds: float,
        webhooks: WebhookSender | None = None,
    ) -> None:
        self._db = db
        self._broker = broker
        self._graphs = graphs
        self._checkpointer = checkpointer
        self._lease = lease
        # Renew well before expiry, so one slow renewal does not hand the run to another worker.
        self._heartbeat_seconds = lease.total_seconds() / 3
        self._timeout_seconds = timeout_seconds
        self._webhooks = webhooks

    async def execute(self, run: dict[str, Any]) -> bool:
        """Run one attempt to its end; whether runs may be waiting on the run's thread (a
        normal end knows: the thread's settling saw whether others are active). The attempt's
        span ends with its END; its epilogue comes once a waiter had its answer."""
        started = time.monotonic()
        with run_span(run, _graph_id(run["kwargs"])):
            outcome = await self._attempt(run)
            if outcome.status == LEASE_LOST:
                # Another worker owns the run now; its attempt records the outcome and ends
                # streams.
                logger.warning("run %s attempt %d lost its lease", run["run_id"], run["attempt"])
                METRICS.attempts.labels("lease_lost").inc()
                return True
            if outcome.status == CHECKPOINTS_UNAVAILABLE:
                await self._requeue_when_reachable(run)
                return True
            others_waiting = await self._end(run, outcome)
        await self._epilogue(run, outcome, time.monotonic() - started)
        return others_waiting

    async def _attempt(self, run: dict[str, Any]) -> Outcome:
        logger.info("run %s attempt %d started", run["run_id"], run["attempt"])
        METRICS.attempts.labels("started").inc()
        async with self._broker.watch_cancel(run["run_id"]) as cancel:
            streaming = asyncio.ensure_future(self._stream(run))
            stopping = asyncio.ensure_future(self._watch(run, cancel))
            try:
                await asyncio.wait({streaming, stopping}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                streaming.cancel()
                stopping.cancel()
                await self._return_to_queue(run)
                raise
            if streaming.done():
                stopping.cancel()
                return streaming.result()
            streaming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await streaming
            outcome = stopping.result()
            if outcome.status == "timeout":
                await self._publish(run, "error", outcome.error)
            return outcome

    async def _end(self, run: dict[str, Any], outcome: Outcome) -> bool:
        """Record the outcome and publish END; whether other runs are active on the thread."""
        try:
            others_waiting = await self._finish(run, outcome)
        finally:
            # Waiters must never hang, even if recording the outcome failed.
            if is_protocol_run(run):
                await self._publish_protocol_outcome(run, outcome)
            await self._publish_event(run, END)
        record_run_outcome(outcome.status)
        return others_waiting

    async def _epilogue(self, run: dict[str, Any], outcome: Outcome, seconds: float) -> None:
        """What follows a run's END and waits for its answer (`_let_waiters_answer`)."""
        await _let_waiters_answer()
        logger.info("run %s ended: %s", run["run_id"], outcome.status)
        graph_id = _graph_id(run["kwargs"])
        METRICS.runs.labels(outcome.status, graph_id).inc()
        METRICS.run_duration.labels(graph_id).observe(seconds)
        if self._webhooks is not None:
            values = outcome.snapshot.values if outcome.snapshot is not None else None
            self._webhooks.send(run, status=outcome.status, values=values, error=outcome.error)
        if run["kwargs"].get("temporary") and not self._db.dialect.holds_checkpoints:
            await self._checkpointer.adelete_thread(run["thread_id"])

    async def _watch(self, run: dict[str, Any], cancel: CancelSignal) -> Outcome:
        """Renew the run's lease until the run must stop early: cancelled (by a broker signal
        or the flag on its row, read at every renewal), timed out, or taken over. The claim has
        just set the lease, so the first renewal waits FIRST_RENEWAL_SECONDS (most runs end
        sooner); it also reads a cancel requested before this worker listened for signals."""
        deadline = time.monotonic() + self._timeout_seconds
        quiet_for = min(FIRST_RENEWAL_SECONDS, self._heartbeat_seconds)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Outcome("timeout", _timed_out(self._timeout_seconds))
            action = await cancel.wait(min(quiet_for, remaining))
            quiet_for = self._heartbeat_seconds
            if action is None:
                # Shielded: this task is cancelled when the run ends, and a database transaction
                # cut in the middle would leave the SQLite connection holding its write lock.
                held, action = await asyncio.shield(self._renew_lease(run))
                if not held:
                    return Outcome(LEASE_LOST)
            if action is not None:
                return Outcome("interrupted", _user_interrupt(), cancel_action=action)

    async def _renew_lease(self, run: dict[str, Any]) -> tuple[bool, str | None]:
        try:
            async with self._db.autocommit() as tx:
                return await tx.runs.renew_lease(
                    run["run_id"], run["attempt"], now_utc(), self._lease
                )
        except Exception:
            # The database may be briefly unreachable: keep running; fencing guards the result.
            logger.exception("renewing the lease of run %s failed", run["run_id"])
            return True, None

    async def _stream(self, run: dict[str, Any]) -> Outcome:
        kwargs = run["kwargs"]
        events = run_event_writer(self._broker, run)
        events.add(_event("metadata", {"run_id": run["run_id"], "attempt": run["attempt"]}))
        protocol = None
        if is_protocol_run(run):
            protocol = thread_event_writer(self._broker, run["thread_id"])
        try:
            with writing_as(run["run_id"], run["attempt"], new_thread_id=_new_thread_id(run)):
                async with self._graphs.graph(
                    _graph_id(kwargs),
                    kwargs["config"],
                    access_context="threads.create_run",
                    user=_user(kwargs),
                    run_context=kwargs.get("context") or None,
                ) as graph:
                    if protocol is not None:
                        protocol.add(lifecycle(run, "running"))
                        await stream_protocol_events(
                            graph,
                            _graph_input(kwargs),
                            _run_config(run),
                            _options(kwargs),
                            run,
                            protocol,
                        )
                        await protocol.drain()
                    else:
                        async for name, payload in _graph_events(graph, kwargs, _run_config(run)):
                            await events.put(_event(name, payload))
                    snapshot = None
                    if _reads_final_state(run):
                        snapshot = await graph.aget_state(thread_config(run["thread_id"]))
        except GraphInterrupt:
            return Outcome("success")
        except LeaseLost:
            return Outcome(LEASE_LOST)
        except CheckpointsUnavailable:
            logger.warning("run %s cannot reach its checkpoints", run["run_id"], exc_info=True)
            return Outcome(CHECKPOINTS_UNAVAILABLE)
        except Exception as exc:
            logger.exception("run %s failed", run["run_id"])
            error = {"error": type(exc).__name__, "message": str(exc)}
            events.add(_event("error", error))
            return Outcome("error", error)
        finally:
            await events.close()
            if protocol is not None:
                await protocol.close()
        return Outcome("success", snapshot=snapshot)

    async def _publish_protocol_outcome(self, run: dict[str, Any], outcome: Outcome) -> None:
        if outcome.status in (LEASE_LOST, CHECKPOINTS_UNAVAILABLE):
            return
        interrupts = list(outcome.snapshot.interrupts) if outcome.snapshot is not None else []
        events = outcome_events(run, outcome.status, interrupts, outcome.error)
        # After the attempt's own events: `_stream` appended the run's `running` event.
        await self._broker.append_thread_events(run["thread_id"], events, continues=True)

    async def _publish(self, run: dict[str, Any], event: str, payload: Any) -> None:
        await self._publish_event(run, _event(event, payload))

    async def _publish_event(self, run: dict[str, Any], event: StreamEvent) -> None:
        """An event after the attempt's own (`_stream` opened the run's stream)."""
        await publish_run_events(self._broker, run, [event], continues=True)

    async def _finish(self, run: dict[str, Any], outcome: Outcome) -> bool:
        """Record the final run status and the thread's new state; whether other runs are
        active on the thread."""
        run_id, thread_id = run["run_id"], run["thread_id"]
        rollback = outcome.cancel_action == "rollback"
        if rollback:
            # The thread goes back to how it was before this run, error included.
            # Its values and interrupts are those of the last run, which the row still holds.
            await delete_run_checkpoints(self._checkpointer, thread_id, run_id)
            outcome.error = None
        elif outcome.snapshot is None and outcome.status != "success" and _reads_final_state(run):
            outcome.snapshot = await self._latest_snapshot(run)
        attempt = run["attempt"]
        if run["kwargs"].get("temporary"):
            # A stateless run's row goes with its thread (its checkpoints after the END):
            # deleted, not first rewritten with its outcome (on SQLite a rewrite copies the
            # whole row, a large input included).
            async with self._db.autocommit() as conn:
                if await conn.runs.end_temporary_attempt(run_id, attempt):
                    return False
            return _taken_over(run_id, attempt)
        now = now_utc()
        state = thread_fields_from_snapshot(outcome.snapshot) if outcome.snapshot else None
        if rollback:
            async with self._db.transaction() as tx:
                if not await tx.runs.delete_attempt(run_id, attempt):
                    return _taken_over(run_id, attempt)
                failed = outcome.status in ("error", "timeout")
                return await settle_thread(
                    tx, thread_id, run_id, now, failed=failed, error=None, state=state
                )
        others_active = await end_attempt(
            self._db,
            run_id,
            thread_id,
            attempt,
            outcome.status,
            now,
            error=outcome.error,
            state=state,
        )
        if others_active is None:
            return _taken_over(run_id, attempt)
        return others_active

    async def _latest_snapshot(self, run: dict[str, Any]) -> Any:
        try:
            kwargs = run["kwargs"]
            async with self._graphs.graph(
                _graph_id(kwargs),
                kwargs["config"],
                access_context="threads.read",
                user=_user(kwargs),
            ) as graph:
                snapshot = await graph.aget_state(thread_config(run["thread_id"]))
        except Exception:
            logger.exception("could not read the state of thread %s", run["thread_id"])
            return None
        return snapshot if snapshot.config is not None and snapshot.created_at else None

    async def _requeue_when_reachable(self, run: dict[str, Any]) -> None:
        """Hand the run back as soon as the database answers, rather than after its lease."""
        while True:
            try:
                await self._return_to_queue(run)
                return
            except database_errors() as exc:
                if not is_database_unavailable(exc):
                    raise
                logger.warning("run %s waits for the database to requeue it", run["run_id"])
                await asyncio.sleep(_REQUEUE_RETRY_SECONDS)

    async def _return_to_queue(self, run: dict[str, Any]) -> None:
        async with self._db.transaction() as tx:
            await tx.runs.release(run["run_id"], run["attempt"], now_utc())
        logger.info("run %s returned to the queue", run["run_id"])
        # Another worker takes it now rather than at its next idle recheck.
        await self._broker.wake_workers()


def _new_thread_id(run: dict[str, Any]) -> str | None:
    """A stateless run's thread, made with it, until its first attempt writes to it."""
    if run["kwargs"].get("temporary") and run["attempt"] == 1:
        return str(run["thread_id"])
    return None


def _taken_over(run_id: str, attempt: int) -> bool:
    """Another worker took the run over (this attempt's lease expired): it decides the outcome,
    and runs may be waiting on the thread."""
    logger.warning("run %s attempt %d was taken over; outcome dropped", run_id, attempt)
    return True


def _reads_final_state(run: dict[str, Any]) -> bool:
    """Whether anything reads the thread's state once the run ended: the thread's row (unless it
    is a stateless run's, deleted with it), a webhook, the thread protocol's outcome."""
    kwargs = run["kwargs"]
    return not kwargs.get("temporary") or bool(kwargs.get("webhook")) or is_protocol_run(run)


def _graph_id(kwargs: dict[str, Any]) -> str:
    return str(kwargs["config"]["configurable"]["graph_id"])


def _user(kwargs: dict[str, Any]) -> AuthUser | None:
    return run_user(kwargs["config"]["configurable"])


def _timed_out(seconds: float) -> dict[str, str]:
    return {"error": "TimeoutError", "message": f"Run exceeded BG_JOB_TIMEOUT_SECS ({seconds:g}s)"}


def _user_interrupt() -> dict[str, str]:
    return {"error": "UserInterrupt", "message": "Run was cancelled"}


def _run_config(run: dict[str, Any]) -> dict[str, Any]:
    """The stored config, plus the run's id and name for callbacks, traces and `events`."""
    config = run["kwargs"]["config"]
    return {
        **config,
        "metadata": {**config.get("metadata", {}), "run_attempt": run["attempt"]},
        "run_id": uuid.UUID(run["run_id"]),
        "run_name": _graph_id(run["kwargs"]),
    }


async def _graph_events(
    graph: Any, kwargs: dict[str, Any], config: dict[str, Any]
) -> AsyncIterator[tuple[str, Any]]:
    """The graph's output as (SSE event name, payload) pairs."""
    requested = set(kwargs["stream_mode"])
    modes = sorted({_LANGGRAPH_MODE.get(mode, mode) for mode in requested if mode != "events"})
    options = {**_options(kwargs), "stream_mode": modes or ["values"], "subgraphs": True}
    graph_input = _graph_input(kwargs)
    if "events" in requested:
        stream = _with_events(graph, graph_input, config, options)
    else:
        stream = graph.astream(graph_input, config, **options)
    legacy = LegacyMessages()
    async for item in stream:
        if item[0] == "events":
            yield item
            continue
        namespace, mode, chunk = item
        if (namespace and not kwargs.get("subgraphs")) or not modes:
            continue
        for name, payload in _api_events(mode, chunk, requested, legacy):
            yield ("|".join([name, *namespace]) if namespace else name), payload


def _api_events(
    mode: str, chunk: Any, requested: set[str], legacy: LegacyMessages
) -> list[tuple[str, Any]]:
    """Map one LangGraph chunk to the API events the client asked for."""
    if mode != "messages":
        return [(mode, chunk)]
    events: list[tuple[str, Any]] = []
    if "messages-tuple" in requested:
        events.append(("messages", chunk))
    if "messages" in requested:
        events.extend(legacy.events(*chunk))
    return events


def _options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """How the graph runs, whichever way it streams."""
    return {
        "context": kwargs.get("context") or None,
        "interrupt_before": kwargs.get("interrupt_before"),
        "interrupt_after": kwargs.get("interrupt_after"),
        "durability": kwargs.get("durability") or "async",
    }


async def _with_events(
    graph: Any, graph_input: Any, config: dict[str, Any], options: dict[str, Any]
) -> AsyncIterator[Any]:
    async for event in graph.astream_events(graph_input, config, version="v2", **options):
        if "langsmith:hidden" in event.get("tags", ()):
            continue
        if event["event"] == "on_chain_stream" and not event.get("parent_ids"):
            yield event["data"]["chunk"]
        yield ("events", event)


def _graph_input(kwargs: dict[str, Any]) -> Any:
    command = kwargs.get("command")
    if not command:
        return kwargs.get("input")
    goto = command.get("goto")
    return Command(
        update=command.get("update"),
        resume=command.get("resume"),
        goto=_goto(goto) if goto is not None else (),
    )


def _goto(goto: Any) -> Any:
    if isinstance(goto, list):
        return [_goto(item) for item in goto]
    if isinstance(goto, dict):
        return Send(goto["node"], goto.get("input"))
    return goto


def _event(name: str, payload: Any) -> StreamEvent:
    return StreamEvent(name, serde.dumps(payload))


async def publish_run_events(
    broker: Broker, run: dict[str, Any], events: list[StreamEvent], *, continues: bool = False
) -> None:
    """To the run's subscribers and its thread's; kept for replay if the run is resumable.
    `continues`: this attempt published to the run's stream before."""
    await broker.publish_many(
        run["run_id"],
        events,
        thread_id=run["thread_id"],
        resumable=bool(run["kwargs"].get("resumable")),
        continues=continues,
    )


def run_event_writer(broker: Broker, run: dict[str, Any]) -> BatchWriter[StreamEvent]:
    """Publishes an attempt's events in batches; every batch after the first continues it."""
    opened = False

    async def publish(batch: list[StreamEvent]) -> None:
        nonlocal opened
        continues, opened = opened, True
        await publish_run_events(broker, run, batch, continues=continues)

    return BatchWriter(publish)
