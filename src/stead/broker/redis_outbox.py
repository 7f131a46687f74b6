"""The script calls of every run a process executes, sent to Redis together.

Each run publishes its own batches; with a hundred runs at once, each batch waiting for a pooled
connection of its own, some waited longer than any bound while others took their turn again and
again. Here the calls queue in the order they are made, and one task sends all that are waiting
in one pipeline per round trip: one connection publishes for the whole process, and a call waits
only for the round trip before its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError
from redis.typing import EncodableT, KeyT

# Calls sent in one pipeline at most: a bound on the size of one round trip.
_PIPELINE_CALLS = 256


@dataclass(eq=False)
class _Call:
    script: AsyncScript
    keys: list[KeyT]
    args: list[EncodableT]
    # The error Redis answered with, or None once the call was applied.
    done: asyncio.Future[RedisError | None]


class ScriptOutbox:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._calls: list[_Call] = []
        self._waiting = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None

    async def call(
        self, script: AsyncScript, keys: list[KeyT], args: list[EncodableT]
    ) -> RedisError | None:
        """Run the script once every call made before it was sent; None when it was applied,
        else what went wrong (Redis is away)."""
        done: asyncio.Future[RedisError | None] = asyncio.get_running_loop().create_future()
        self._calls.append(_Call(script, keys, args, done))
        self._waiting.set()
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_forever(), name="redis outbox")
        # A caller that gives up (a cancelled run) leaves its call to be sent all the same.
        return await asyncio.shield(done)

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
            self._sender = None
        for call in self._calls:
            if not call.done.done():
                call.done.set_result(RedisError("the broker closed before this was sent"))
        self._calls.clear()

    async def _send_forever(self) -> None:
        while True:
            await self._waiting.wait()
            self._waiting.clear()
            # In a call of its own: no local keeps the last calls' arguments (a large run's
            # events) while this waits for the next.
            await self._send_queued()

    async def _send_queued(self) -> None:
        while self._calls:
            # Calls stay queued until answered, so that closing can answer them.
            batch = self._calls[:_PIPELINE_CALLS]
            outcomes = await self._send(batch)
            del self._calls[: len(batch)]
            for call, outcome in zip(batch, outcomes, strict=True):
                if not call.done.done():
                    call.done.set_result(outcome)

    async def _send(self, batch: list[_Call]) -> list[RedisError | None]:
        try:
            outcomes = await self._pipeline(batch)
            unknown = [
                i for i, outcome in enumerate(outcomes) if isinstance(outcome, NoScriptError)
            ]
            if unknown:
                # Redis restarted or was flushed: load the scripts and send those calls again
                # (the others were applied; a run has one call in flight at a time).
                for script in {batch[i].script for i in unknown}:
                    await self._redis.script_load(script.script)
                resent = await self._pipeline([batch[i] for i in unknown])
                for i, outcome in zip(unknown, resent, strict=True):
                    outcomes[i] = outcome
        except RedisError as exc:
            return [exc] * len(batch)
        return outcomes

    async def _pipeline(self, batch: list[_Call]) -> list[RedisError | None]:
        """One EVALSHA per call, in one round trip (no SCRIPT EXISTS first, as redis-py's
        pipelines of scripts send)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for call in batch:
                pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
            replies = await pipe.execute(raise_on_error=False)
        return [reply if isinstance(reply, RedisError) else None for reply in replies]
