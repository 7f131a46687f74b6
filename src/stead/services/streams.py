"""Stream rules shared by run joins and the thread stream: `Last-Event-ID`, thread stream modes."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from stead import serde
from stead.broker import Broker, StreamEvent, Subscription
from stead.broker.base import FROM_START
from stead.errors import Unprocessable
from stead.storage.access import UNRESTRICTED, Access

if TYPE_CHECKING:
    from stead.services.threads import ThreadService

THREAD_STREAM_MODES = ("run_modes", "lifecycle", "state_update")
STATE_UPDATE = "state_update"

# A Redis stream id as clients send it back: "<ms>", "<ms>-<seq>" or "<ms>-*".
_EVENT_ID = re.compile(r"^(\d+)(?:-(\d+|\*))?$")
# "-" and "0-0" mean "from the first kept event" (Redis); React's useStream sends "-1" to run joins.
_RUN_FROM_START = ("-", "0-0", "-1")
_THREAD_FROM_START = ("-", "0-0")


def replay_after(last_event_id: str | None, *, thread: bool = False) -> str | None:
    """The id a reconnecting client resumes after, as "<ms>-<seq>"; None when it asks no replay."""
    if not last_event_id:
        return None
    if last_event_id in (_THREAD_FROM_START if thread else _RUN_FROM_START):
        return FROM_START
    match = _EVENT_ID.match(last_event_id)
    if match is None:
        raise Unprocessable("Invalid last-event-id: must be a valid Redis stream ID")
    ms, seq = match.groups()
    return f"{int(ms)}-{int(seq) if seq and seq != '*' else 0}"


def thread_stream_modes(values: Iterable[str]) -> frozenset[str]:
    """The modes asked for, as a comma list or repeated; `run_modes` when none."""
    modes = {part.strip() for value in values for part in value.split(",") if part.strip()}
    for mode in sorted(modes):
        if mode not in THREAD_STREAM_MODES:
            raise Unprocessable(f"Invalid stream mode: {mode}")
    return frozenset(modes or {"run_modes"})


def state_update_event(thread_id: str, state: dict[str, Any]) -> StreamEvent:
    return StreamEvent(STATE_UPDATE, serde.dumps({"state": state, "thread_id": thread_id}))


class ThreadStreams:
    """The long-lived stream of a thread: every event of its runs, and its state updates."""

    def __init__(self, threads: ThreadService, broker: Broker) -> None:
        self._threads = threads
        self._broker = broker

    @contextlib.asynccontextmanager
    async def join(
        self,
        thread_id: str,
        modes: Iterable[str],
        last_event_id: str | None,
        access: Access = UNRESTRICTED,
    ) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        selected = thread_stream_modes(modes)
        after = replay_after(last_event_id, thread=True)
        async with self._broker.subscribe_thread(thread_id, after=after) as subscription:
            # Unknown, deleted and invisible threads are 404.
            await self._threads.get(thread_id, access)
            yield _selected(subscription, selected)


async def _selected(
    subscription: Subscription, modes: frozenset[str]
) -> AsyncIterator[StreamEvent]:
    async for event in subscription:
        if _wanted(event, modes):
            yield event


def _wanted(event: StreamEvent, modes: frozenset[str]) -> bool:
    if event.event == STATE_UPDATE:
        return STATE_UPDATE in modes
    # Run starts ({"run_id", "attempt"}) and ends ({"status": "run_done"}) are the lifecycle.
    if event.event == "metadata":
        return "lifecycle" in modes or "run_modes" in modes
    return "run_modes" in modes
