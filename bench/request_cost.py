"""What one request costs each server before and around its own work: sequential requests,
one at a time, their p50 latency and the server's CPU per request.

- `GET /ok`: the liveness probe, the least a request can do (its whole cost is the HTTP stack);
- `POST /threads/count` and `POST /threads/search` (limit 10) once the servers hold the threads
  of `--seed-seconds` of creation at 16 clients.

Servers as in compare.py (started at once, each measured in turn, in `--rounds` interleaved
rounds; the table has the medians). On PostgreSQL + Redis the worker idles and is counted.

    python bench/request_cost.py [--servers embedded,pg-redis,official,floor] [--requests 2000]
                                 [--rounds 2] [--seed-seconds 2] [--source path/to/src]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import SERVERS, Server, client_session, created_threads, interleaved, start

# (label, method, path, body)
REQUESTS = [
    ("`GET /ok`", "GET", "/ok", None),
    ("`POST /threads/count`", "POST", "/threads/count", b"{}"),
    ("`POST /threads/search`, limit 10", "POST", "/threads/search", b'{"limit": 10}'),
]
_JSON = {"content-type": "application/json"}
# Requests of each kind sent first and not timed.
_WARM_UP = 200


async def sequential_latencies(
    url: str, method: str, path: str, body: bytes | None, requests: int
) -> list[float]:
    """The seconds each of `requests` sequential requests took, after a few untimed ones."""
    timings = []
    async with client_session(url) as http:
        for index in range(_WARM_UP + requests):
            started = time.perf_counter()
            await _request(http, method, path, body)
            if index >= _WARM_UP:
                timings.append(time.perf_counter() - started)
    return timings


async def _request(http: aiohttp.ClientSession, method: str, path: str, body: bytes | None) -> None:
    async with http.request(method, path, data=body, headers=_JSON) as response:
        text = await response.read()
    assert response.status == 200, text[:500]


def measure_kind(requests: int, server: Server) -> dict[str, float]:
    figures = {}
    for label, method, path, body in REQUESTS:
        cpu_before = server.cpu_seconds()
        timings = asyncio.run(sequential_latencies(server.url, method, path, body, requests))
        cpu = server.cpu_seconds() - cpu_before
        figures[f"{label} p50"] = 1000 * statistics.median(timings)
        figures[f"{label} cpu"] = 1000 * cpu / (_WARM_UP + requests)
    return figures


def table(results: dict[str, dict[str, float]]) -> str:
    names = list(results)
    lines = [
        "| request | " + " | ".join(f"{name} p50 / CPU" for name in names) + " |",
        "|---" * (1 + len(names)) + "|",
    ]
    for label, *_ in REQUESTS:
        cells = [
            f"{results[name][f'{label} p50']:.3f} / {results[name][f'{label} cpu']:.3f} ms"
            for name in names
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed-seconds", type=float, default=2.0)
    parser.add_argument("--source", type=Path, help="the src folder of the Stead to measure")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        servers = {
            name: stack.enter_context(start(name, args.source)) for name in args.servers.split(",")
        }
        for server in servers.values():
            asyncio.run(created_threads(server.url, 16, args.seed_seconds))
        results = interleaved(servers, args.rounds, partial(measure_kind, args.requests))
    print(table(results))
    print(f"\nmedians of {args.rounds} interleaved rounds of {args.requests} requests of each kind")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
