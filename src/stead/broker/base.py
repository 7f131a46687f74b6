"""The broker interface. Nothing here is durable: losing a message must never lose a run."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from stead import serde


@dataclass(frozen=True)
class StreamEvent:
    """One SSE event: its name, its JSON payload (encoded once by the worker) and, on streams a
    client can resume (resumable runs, threads), its id."""

    event: str
    data: bytes
    id: str | None = None

    @property
    def is_end(self) -> bool:
        return self.event == END_EVENT

    def with_id(self, event_id: str) -> StreamEvent:
        return dataclasses.replace(self, id=event_id)


# Published after the run's row is final; subscribers close their streams on it.
END_EVENT = "__end__"
END = StreamEvent(END_EVENT, b"null")

# Event ids are Redis-stream style, "<ms>-<seq>"; replaying after FROM_START gives all that is kept.
FROM_START = "0-0"


def event_position(event_id: str) -> tuple[int, int]:
    """Where an event id sorts: a later event has a greater position."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def run_done(run_id: str) -> StreamEvent:
    """What a thread's subscribers get when one of its runs ends (END only closes run streams)."""
    return StreamEvent("metadata", serde.dumps({"status": "run_done", "run_id": run_id}))


EVENTS_LOST = StreamEvent(
    "error",
    serde.dumps(
        {
            "error": "EventsLost",
            "message": "Some events of this stream could not be delivered (the event broker lost"
            " them); read the thread's state or join the run for its result.",
        }
    ),
)


class Subscription:
    """The events of one run (or thread), in order, for one listener, until the run ends.

    `replay` holds the kept events a reconnecting listener asked for; they come first.

    One listener: a future to wake it and a timer while it waits, where a queue and an
    `asyncio.timeout` cost twice as much per event (a run's waiter takes four or five).
    """

    def __init__(self, replay: Iterable[StreamEvent] | None = None) -> None:
        self._events: collections.deque[StreamEvent] = collections.deque(replay or ())
        self._waiter: asyncio.Future[None] | None = None
        self.replaying = replay is not None

    def deliver(self, event: StreamEvent) -> None:
        self._events.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next(self, timeout: float | None = None) -> StreamEvent | None:
        """The next event; None when `timeout` passes first."""
        if not self._events:
            await self._wait(timeout)
        return self._events.popleft() if self._events else None

    async def _wait(self, timeout: float | None) -> None:
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        while True:
            if not self._events:
                await self._wait(None)
            event = self._events.popleft()
            if event.is_end:
                return
            yield event


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(frozen=True)
class ThreadEvent:
    """One event of a thread's protocol log (the thread streaming protocol).

    `params` is the JSON of the envelope's params, encoded once by the worker; `seq` is given by
    the broker when the event is appended, one more than the thread's previous event.
    """

    method: str
    namespace: tuple[str, ...]
    params: bytes
    event_id: str
    seq: int = 0

    def numbered(self, seq: int) -> ThreadEvent:
        return ThreadEvent(self.method, self.namespace, self.params, self.event_id, seq)

    def envelope(self) -> bytes:
        """The event as clients get it: `{"type":"event","event_id","seq","method","params"}`."""
        return b"".join(
            (
                b'{"type":"event","event_id":',
                serde.dumps(self.event_id),
                b',"seq":',
                str(self.seq).encode(),
                b',"method":',
                serde.dumps(self.method),
                b',"params":',
                self.params,
                b"}",
            )
        )


class ThreadEventFeed:
    """A thread's protocol events for one listener: the replayed ones first, then live ones.

    It never ends by itself; when the broker loses the events (Redis went away), iteration stops
    and `lost` is set, so that the listener can tell its client instead of going quiet.
    """

    def __init__(self, replay: Iterable[ThreadEvent] = ()) -> None:
        self._queue: asyncio.Queue[ThreadEvent | None] = asyncio.Queue()
        self.replayed = 0
        self.lost = False
        for event in replay:
            self._queue.put_nowait(event)
            self.replayed += 1

    def deliver(self, event: ThreadEvent) -> None:
        self._queue.put_nowait(event)

    def take_replayed(self) -> list[ThreadEvent]:
        """The replayed events, taken off the feed at once; live ones follow in iteration."""
        taken = [self._queue.get_nowait() for _ in range(self.replayed)]
        self.replayed = 0
        return [event for event in taken if event is not None]

    def lose(self) -> None:
        self.lost = True
        self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[ThreadEvent]:
        async for batch in self.batches():
            for event in batch:
                yield event

    async def batches(self) -> AsyncIterator[list[ThreadEvent]]:
        """The events in the order they came, as many at a time as have come: a listener that
        writes them to a socket writes once per batch, not once per event."""
        while True:
            batch = [await self._queue.get()]
            while batch[-1] is not None and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            events = [event for event in batch if event is not None]
            if events:
                yield events
            if batch[-1] is None:
                return


class CancelSignal:
    """Set when someone asks to cancel a run; carries the action (interrupt or rollback)."""

    def __init__(self) -> None:
        self.action: str | None = None
        # A future, not an Event: waiting on it with a timeout needs no task (one per run).
        self._fired: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def fire(self, action: str) -> None:
        self.action = action
        if not self._fired.done():
            self._fired.set_result(None)

    async def wait(self, timeout: float | None = None) -> str | None:
        """The action once someone asks to cancel; None if `timeout` seconds pass first."""
        await asyncio.wait({self._fired}, timeout=timeout)
        return self.action


class Broker(ABC):
    async def publish(
        self,
        run_id: str,
        event: StreamEvent,
        *,
        thread_id: str | None = None,
        resumable: bool = False,
        continues: bool = False,
    ) -> None:
        """One event of a run; see `publish_many`."""
        await self.publish_many(
            run_id, [event], thread_id=thread_id, resumable=resumable, continues=continues
        )

    @abstractmethod
    async def publish_many(
        self,
        run_id: str,
        events: list[StreamEvent],
        *,
        thread_id: str | None = None,
        resumable: bool = False,
        continues: bool = False,
    ) -> None:
        """Send a run's events, in order, to its subscribers and, given `thread_id`, to the
        thread's (with ids).

        `continues` says that this attempt already published to the run's stream: a broker that
        can drop streams (Redis evicting keys) then knows that a missing one lost its events.

        A resumable run's events get ids and are kept for replay, by run and by thread. END closes
        the run's subscriptions, reaches the thread's as `run_done`, and starts the TTL after which
        the run's kept events are dropped. Events that cannot be delivered are never dropped in
        silence: the run's and thread's subscribers get an `error` event and their streams end.
        """

    @abstractmethod
    async def publish_to_thread(self, thread_id: str, event: StreamEvent) -> None:
        """An event for the thread's subscribers only, such as a state update; it is not kept."""

    @abstractmethod
    def subscribe(
        self, run_id: str, *, after: str | None = None, new_run: bool = False
    ) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Listen to a run's events. Subscribe before the run can start, or events are missed.

        With `after` (an event id or FROM_START), the kept events after it come first, then the
        live ones, with no gap and no duplicate; `replaying` tells whether anything was kept.
        `new_run`: the run is not created yet, so it has no events to look up.
        """

    @abstractmethod
    def subscribe_thread(
        self, thread_id: str, *, after: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Listen to the events of every run of a thread, and its state updates; never ends.

        With `after`, the kept events of its resumable runs after that id come first.
        """

    @abstractmethod
    async def append_thread_events(
        self,
        thread_id: str,
        events: list[ThreadEvent],
        *,
        starts_run: bool = False,
        continues: bool = False,
    ) -> None:
        """Add events to the thread's protocol log, numbering them on from its last `seq`.

        `starts_run` marks the first one as the start of the thread's current run: a listener
        that asks no replay point gets the current run from there. `continues` says that this
        attempt appended before (see `publish_many`). The log keeps the thread's latest events (a
        bounded number) for replay.
        """

    @abstractmethod
    async def last_thread_seq(self, thread_id: str) -> int | None:
        """The `seq` of the thread's latest protocol event: 0 when it has none, None when the
        broker cannot tell (Redis is away)."""

    @abstractmethod
    def follow_thread_events(
        self, thread_id: str, *, since: int | None = None
    ) -> contextlib.AbstractAsyncContextManager[ThreadEventFeed]:
        """Listen to the thread's protocol log: kept events with `seq > since` first (without
        `since`, those of its current run), then live ones, with no gap and no duplicate."""

    @abstractmethod
    async def wake_workers(self, run_id: str | None = None) -> None:
        """Tell idle workers that a run may be ready: `run_id`, just created, or any."""

    @abstractmethod
    async def wait_for_work(self, timeout: float) -> str | None:
        """Return on a wake-up or after `timeout` seconds, whichever comes first: with the run
        the wake-up named, when the broker carries it; otherwise None."""

    @abstractmethod
    async def signal_cancel(self, run_id: str, action: str) -> None: ...

    @abstractmethod
    def watch_cancel(self, run_id: str) -> contextlib.AbstractAsyncContextManager[CancelSignal]:
        """A signal that fires when a cancel for this run is sent."""

    async def ping(self) -> None:
        """Raises when the broker's backend does not answer (an in-process one always does)."""
        return None

    async def close(self) -> None:
        return None
