"""Throughput and tail latency of one-node runs under concurrent clients, side by side.

    python bench/throughput.py [--seconds 10] [--clients 1,16,64] [--json out.json]
                               [--configs embedded,official,pg-redis-1w,pg-redis-2w]

Each client owns a thread and sends `POST /threads/{id}/runs/wait` (graph `echo`) back to back for
`--seconds`; the table shows completed runs per second and p50/p99 latency per configuration and
client count. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.postgres import migrated_postgres  # noqa: E402
from tests.support.servers import official_server, stead_server  # noqa: E402
from tests.support.services import redis_server  # noqa: E402
from tests.support.worker import stead_worker  # noqa: E402

GRAPHS_DIR = REPO_ROOT / "tests" / "graphs"
CONFIG = GRAPHS_DIR / "langgraph.json"
CONFIGS = ("embedded", "official", "pg-redis-1w", "pg-redis-2w")


@contextmanager
def _embedded() -> Iterator[str]:
    with stead_server(CONFIG) as server:
        yield server.url


@contextmanager
def _pg_redis(workers: int) -> Iterator[str]:
    """One API-only server and `workers` workers sharing PostgreSQL and Redis."""
    with ExitStack() as stack:
        env = {
            "DATABASE_URI": stack.enter_context(migrated_postgres(CONFIG)),
            "REDIS_URI": stack.enter_context(redis_server()).url,
        }
        api = stack.enter_context(stead_server(CONFIG, env={**env, "N_JOBS_PER_WORKER": "0"}))
        for _ in range(workers):
            stack.enter_context(stead_worker(CONFIG, env=env))
        yield api.url


def _start(name: str) -> Any:
    if name == "embedded":
        return _embedded()
    if name == "official":
        return official_server(GRAPHS_DIR)
    return _pg_redis(int(name.removeprefix("pg-redis-").removesuffix("w")))


async def _client(base: str, deadline: float, latencies: list[float]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        thread_id = (await http.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": "echo", "input": {"text": "hi"}}
        while time.monotonic() < deadline:
            start = time.perf_counter()
            response = await http.post(f"/threads/{thread_id}/runs/wait", json=body)
            if response.status_code != 200 or response.json() != {"text": "hi"}:
                raise RuntimeError(f"unexpected answer: {response.status_code} {response.text}")
            latencies.append(time.perf_counter() - start)


async def measure(base: str, clients: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(*(_client(base, deadline, latencies) for _ in range(clients)))
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {
        "runs": len(ordered),
        "runs_per_second": len(ordered) / elapsed,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.clients.split(",")]
    results: dict[str, dict[int, dict[str, float]]] = {}
    for name in args.configs.split(","):
        print(f"# {name}: starting", file=sys.stderr)
        with _start(name) as base:
            asyncio.run(measure(base, 2, 1.0))  # warm-up
            results[name] = {n: asyncio.run(measure(base, n, args.seconds)) for n in levels}
    print(f"{'configuration':<14}{'clients':>8}{'runs/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, by_level in results.items():
        for clients, row in by_level.items():
            print(
                f"{name:<14}{clients:>8}{row['runs_per_second']:>10.1f}"
                f"{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
