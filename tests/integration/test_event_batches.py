"""How a run's events are sent: in order, in batches, none left behind when the run ends."""

from __future__ import annotations

import asyncio

import pytest

from stead.worker.batching import BatchWriter


async def test_closing_sends_the_events_still_waiting_in_order() -> None:
    sent: list[list[int]] = []

    async def slow_send(batch: list[int]) -> None:
        await asyncio.sleep(0.05)
        sent.append(batch)

    writer: BatchWriter[int] = BatchWriter(slow_send)
    writer.add(1)
    await asyncio.sleep(0.01)  # the first batch is being sent
    for item in (2, 3, 4):
        writer.add(item)
    await writer.close()
    assert sent == [[1], [2, 3, 4]]


async def test_closing_once_everything_was_sent_sends_nothing_again() -> None:
    sent: list[list[int]] = []

    async def send(batch: list[int]) -> None:
        sent.append(batch)

    writer: BatchWriter[int] = BatchWriter(send)
    writer.add(1)
    await writer.drain()
    await writer.close()
    assert sent == [[1]]


async def test_a_failed_send_fails_the_drain() -> None:
    async def failing_send(batch: list[int]) -> None:
        raise ConnectionError("broker away")

    writer: BatchWriter[int] = BatchWriter(failing_send)
    writer.add(1)
    with pytest.raises(ConnectionError):
        await writer.drain()
