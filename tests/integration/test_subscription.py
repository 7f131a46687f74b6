"""A subscription hands its listener the events in order, replayed ones first; a wait with a
timeout ends quiet without losing what comes later; a cancelled wait leaves it usable.

Reference: src/stead/broker/base.py (Subscription); issue 16.
"""

from __future__ import annotations

import asyncio
import contextlib

from stead.broker.base import END, StreamEvent, Subscription


def _event(n: int) -> StreamEvent:
    return StreamEvent("values", b"%d" % n)


async def test_replayed_events_come_first_then_delivered_ones_in_order() -> None:
    subscription = Subscription([_event(1), _event(2)])
    subscription.deliver(_event(3))
    assert subscription.replaying
    assert [await subscription.next(1) for _ in range(3)] == [_event(1), _event(2), _event(3)]


async def test_a_waiting_listener_wakes_for_the_next_event() -> None:
    subscription = Subscription()
    waiting = asyncio.ensure_future(subscription.next(5))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    subscription.deliver(_event(1))
    assert await asyncio.wait_for(waiting, 1) == _event(1)


async def test_a_quiet_spell_ends_the_wait_and_loses_nothing() -> None:
    subscription = Subscription()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await subscription.next(0.05) is None
    assert loop.time() - started >= 0.05
    subscription.deliver(_event(1))
    assert await subscription.next(0.05) == _event(1)


async def test_a_cancelled_wait_leaves_the_subscription_usable() -> None:
    subscription = Subscription()
    waiting = asyncio.ensure_future(subscription.next(5))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiting
    subscription.deliver(_event(1))
    assert await subscription.next(1) == _event(1)


async def test_iterating_ends_at_the_end_event() -> None:
    subscription = Subscription()

    async def deliver_later() -> None:
        for event in (_event(1), _event(2), END, _event(3)):
            await asyncio.sleep(0.005)
            subscription.deliver(event)

    delivering = asyncio.ensure_future(deliver_later())
    assert [event async for event in subscription] == [_event(1), _event(2)]
    await delivering
