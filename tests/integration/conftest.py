"""Fixtures of the integration tests that talk to Redis directly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as redis_client

from tests.support.services import Redis, redis_server


@pytest.fixture(scope="module")
def redis() -> Iterator[Redis]:
    """A Redis of the test module's own."""
    with redis_server() as server:
        yield server


@pytest.fixture
async def inspector(redis: Redis) -> AsyncIterator[redis_client.Redis]:
    """A client of that Redis, for a test to look at (or drop) the broker's keys."""
    client = redis_client.Redis.from_url(redis.url)
    yield client
    await client.aclose()
