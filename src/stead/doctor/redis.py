"""Redis: it answers, how fast, and whether its eviction policy may drop what a live run needs."""

from __future__ import annotations

import statistics
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from stead.config import Settings
from stead.doctor.findings import Finding, failed, ok, warning

_SLOW_PING_MS = 10.0
# With noeviction a full Redis refuses writes, which Stead reports on the streams affected; any
# other policy may drop a live stream's buffer or a wake-up without anyone being told.
SAFE_POLICY = "noeviction"


async def check_redis(settings: Settings) -> list[Finding]:
    if settings.redis_uri is None:
        return [ok("redis", "not set: the broker is in-process (one process serves)")]
    client = aioredis.from_url(
        settings.redis_uri, decode_responses=True, socket_connect_timeout=5, socket_timeout=5
    )
    try:
        latency = await _ping_ms(client)
        findings = [_latency(latency), await _eviction(client)]
    except RedisError as exc:
        return [
            failed(
                "redis",
                f"cannot reach it: {exc}",
                "check that Redis runs and that REDIS_URI names it",
            )
        ]
    finally:
        await client.aclose()
    return findings


async def _ping_ms(client: aioredis.Redis) -> float:
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        await client.ping()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _latency(median_ms: float) -> Finding:
    message = f"answers in {median_ms:.2f} ms (median of 5 PINGs)"
    if median_ms > _SLOW_PING_MS:
        return warning("redis", message, "run Redis close to the servers (same zone or host)")
    return ok("redis", message)


async def _eviction(client: aioredis.Redis) -> Finding:
    try:
        policy = str((await client.config_get("maxmemory-policy")).get("maxmemory-policy"))
        maxmemory = int((await client.config_get("maxmemory")).get("maxmemory") or 0)
    except ResponseError:
        return warning(
            "eviction",
            "CONFIG GET is not allowed, so the policy is unknown",
            f"make sure maxmemory-policy is {SAFE_POLICY}",
        )
    limit = f"maxmemory {maxmemory} bytes" if maxmemory else "no maxmemory"
    if policy == SAFE_POLICY or not maxmemory:
        return ok("eviction", f"maxmemory-policy {policy} with {limit}")
    return warning(
        "eviction",
        f"maxmemory-policy {policy} with {limit} may evict a live run's events or wake-ups",
        f"CONFIG SET maxmemory-policy {SAFE_POLICY} (a full Redis then refuses writes, which "
        "Stead reports on the streams affected), and size maxmemory for the replay buffers",
    )
