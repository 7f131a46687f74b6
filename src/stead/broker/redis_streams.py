"""One blocking read per process for every Redis stream its listeners follow.

A blocking XREAD holds its connection for as long as it waits, so reading each open stream on its
own would take a connection per stream, and a busy API process would run out of them. Here one
task reads every followed stream with one XREAD on one connection of its own. A new listener is
taken in by unblocking the read in flight (CLIENT UNBLOCK, sent on the command pool), after which
the read is issued again with the new stream in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from stead.broker.base import FROM_START, event_position

logger = logging.getLogger("stead.broker")

# One stream entry as redis-py returns it: its id and its fields.
Entry = tuple[bytes, dict[bytes, bytes]]

# How long one blocking read waits before it is issued again.
READ_BLOCK_MS = 10_000
_READ_BATCH = 512
# How long a new listener waits for the read in flight to end before unblocking it again: the
# unblock can reach Redis just before the read it is meant for.
_UNBLOCK_AGAIN_SECONDS = 0.005
# How long a cancelled read gets to end before it is cancelled again.
_CANCEL_REPEAT_SECONDS = 0.05
# A reply larger than this (its values' bytes) has the reading connection opened anew: hiredis
# keeps the buffer it read a reply into until the next reply comes, which on a quiet stream (a
# run paused in a long node) holds a large event twice for as long.
RECONNECT_AFTER_BYTES = 1 << 20


@dataclass(eq=False)
class _Following:
    key: str
    # The id of the last entry this listener has had.
    position: str
    on_entries: Callable[[list[Entry]], None]
    on_lost: Callable[[], None]


class StreamReader:
    """Follows Redis streams for many listeners with one blocking read.

    Each listener gets the entries after its own position, in order, with no gap. When Redis
    fails the read, every listener is told (`on_lost`) and dropped; later listeners are read
    again as soon as Redis answers.
    """

    def __init__(self, connection: Redis, commands: Redis) -> None:
        # `connection` holds one connection and never retries: a reconnect would change its
        # client id, which the unblocking needs.
        self._connection = connection
        self._commands = commands
        self._followings: dict[str, set[_Following]] = {}
        self._generation = 0
        self._issued_generation = 0
        self._issued = asyncio.Event()
        self._changed = asyncio.Event()
        self._client_id: int | None = None
        self._blocked = False
        self._task: asyncio.Task[None] | None = None
        self._unblocking: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def follow(
        self,
        key: str,
        position: str,
        on_entries: Callable[[list[Entry]], None],
        on_lost: Callable[[], None],
    ) -> AsyncIterator[None]:
        """Deliver the stream's entries after `position` until the block is left."""
        following = _Following(key, position, on_entries, on_lost)
        self._followings.setdefault(key, set()).add(following)
        self._generation += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read_forever(), name="redis stream reader")
            self._task.add_done_callback(_report_unexpected_end)
        try:
            await self._taken_in(self._generation)
            yield
        finally:
            self._forget(following)

    @property
    def streams_followed(self) -> int:
        return len(self._followings)

    async def close(self) -> None:
        for task in (self._unblocking, self._task):
            if task is not None:
                await stop_reading(task)
        self._task = self._unblocking = None
        await self._connection.aclose()

    async def _taken_in(self, generation: int) -> None:
        """Wait until the read in flight includes what was followed up to `generation`. One
        task unblocks the read for all new listeners at once."""
        if self._issued_generation >= generation:
            return
        if self._unblocking is None or self._unblocking.done():
            self._unblocking = asyncio.create_task(self._unblock_until_current())
        await asyncio.wait({self._unblocking})

    async def _unblock_until_current(self) -> None:
        while self._issued_generation < self._generation:
            if self._task is None or self._task.done():
                return
            self._changed.set()
            # Cleared before the unblock: the read may be issued again before the unblock's
            # answer is seen, and that must end the wait below at once.
            self._issued.clear()
            if self._blocked and self._client_id is not None:
                try:
                    await self._commands.client_unblock(self._client_id)
                except RedisError:
                    # Redis is away: the read fails too, and tells every listener.
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._issued.wait(), _UNBLOCK_AGAIN_SECONDS)

    def _forget(self, following: _Following) -> None:
        followings = self._followings.get(following.key)
        if followings is None:
            return
        followings.discard(following)
        if not followings:
            del self._followings[following.key]

    async def _read_forever(self) -> None:
        while True:
            if not self._followings:
                # Nothing to read: every listener so far was served, or told it was lost.
                self._mark_issued()
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                if self._client_id is None:
                    self._client_id = int(await self._connection.client_id())
                # No await from here to the read: what it reads is what was followed so far.
                streams = {key: _earliest(each) for key, each in self._followings.items()}
                reply = await self._read_once(streams)
            except RedisError as exc:
                self._lose_all(exc)
                continue
            self._dispatch(reply, streams)
            if _values_bytes(reply) > RECONNECT_AFTER_BYTES:
                await self._reconnect()

    async def _read_once(self, streams: dict[str, str]) -> Any:
        self._mark_issued()
        self._blocked = True
        try:
            return await self._connection.xread(
                cast(Any, streams), count=_READ_BATCH, block=READ_BLOCK_MS
            )
        finally:
            self._blocked = False

    def _dispatch(self, reply: Any, read_from: dict[str, str]) -> None:
        for raw_key, entries in reply or ():
            key = raw_key.decode() if isinstance(raw_key, bytes) else raw_key
            requested = read_from.get(key, FROM_START)
            for following in list(self._followings.get(key, ())):
                fresh = cast(list[Entry], entries)
                if following.position != requested:
                    if event_position(following.position) < event_position(requested):
                        # It joined during this read, further back: the next read is from it.
                        continue
                    fresh = _after(fresh, following.position)
                if fresh:
                    following.position = fresh[-1][0].decode()
                    following.on_entries(fresh)

    async def _reconnect(self) -> None:
        """Open the reading connection anew: its parser lets go of the old buffer for a new one.
        The new connection's client id is asked again for the unblocking."""
        self._client_id = None
        connection = self._connection.connection
        if connection is None:
            return
        await connection.disconnect(nowait=True)
        with contextlib.suppress(RedisError):
            # Redis is away: the next read fails too, and tells every listener.
            await connection.connect()

    def _mark_issued(self) -> None:
        self._issued_generation = self._generation
        self._issued.set()

    def _lose_all(self, exc: RedisError) -> None:
        self._client_id = None
        lost = [following for followings in self._followings.values() for following in followings]
        self._followings.clear()
        if lost:
            logger.warning("%d streams interrupted: Redis is unavailable (%s)", len(lost), exc)
        for following in lost:
            following.on_lost()


def _report_unexpected_end(task: asyncio.Task[None]) -> None:
    """The reader only ends when closed; anything else leaves its listeners waiting until the
    next listener starts a new reader, so it is logged."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("the Redis stream reader stopped", exc_info=task.exception())


def _earliest(followings: set[_Following]) -> str:
    return min((following.position for following in followings), key=event_position)


def _values_bytes(reply: Any) -> int:
    """The size of the fields' values an XREAD reply holds."""
    return sum(
        len(value)
        for _key, entries in reply or ()
        for _id, fields in entries
        for value in fields.values()
    )


def _after(entries: list[Entry], position: str) -> list[Entry]:
    """The entries after `position` (a listener that joined later may be ahead of the read)."""
    start = event_position(position)
    return [entry for entry in entries if event_position(entry[0].decode()) > start]


async def stop_reading(task: asyncio.Task[Any]) -> None:
    """Cancel a reading task and wait for it to end. redis-py can lose a cancel that lands while
    a command is being sent (the read that follows then blocks for its whole timeout), so the
    cancel is repeated until the task has ended."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=_CANCEL_REPEAT_SECONDS)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("a stream reader ended with %r", task.exception())
