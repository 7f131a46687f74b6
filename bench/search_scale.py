"""`threads/search` on PostgreSQL seeded to a million threads (issue 16's 20 ms goal).

Seeds a PostgreSQL 15 as the scale tier does (`tests/support/scale.py`: threads over a thousand
users, a run each, no checkpoints unless asked), starts `stead run` on it with a Redis, and times
each search back to back, reporting the median and p90.

    python bench/search_scale.py [--threads 1000000] [--samples 50] [--checkpoints-per-thread 0]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.postgres import stead_migrate  # noqa: E402
from tests.support.scale import seed  # noqa: E402
from tests.support.servers import stead_server  # noqa: E402
from tests.support.services import postgres_server, redis_server  # noqa: E402

CONFIG = REPO_ROOT / "tests" / "graphs" / "langgraph.json"
SEARCHES = {
    "newest 10, no filter (exact total, from the tally)": {"limit": 10},
    "newest 10 of one user (metadata filter)": {"metadata": {"user": "u7"}, "limit": 10},
    "newest 10 busy threads (status filter)": {"status": "busy", "limit": 10},
    "page at offset 500, no filter": {"limit": 10, "offset": 500},
}


def timed_ms(client: httpx.Client, body: dict[str, object], samples: int) -> list[float]:
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        response = client.post("/threads/search", json=body)
        timings.append(1000 * (time.perf_counter() - started))
        assert response.status_code == 200, response.text
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1_000_000)
    parser.add_argument("--checkpoints-per-thread", type=int, default=0)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args(argv)
    with postgres_server() as pg, redis_server() as redis:
        assert stead_migrate(CONFIG, pg.url()).returncode == 0
        started = time.monotonic()
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            seed(conn, args.threads, args.checkpoints_per_thread)
        print(f"seeded {args.threads:,} threads in {time.monotonic() - started:.0f} s")
        env = {"DATABASE_URI": pg.url(), "REDIS_URI": redis.url}
        with (
            stead_server(CONFIG, Path(tempfile.mkdtemp()), env, timeout=60) as server,
            httpx.Client(base_url=server.url, timeout=60) as client,
        ):
            print("| search | p50 | p90 |\n|---|---|---|")
            for label, body in SEARCHES.items():
                timed_ms(client, body, 3)  # warm-up
                timings = sorted(timed_ms(client, body, args.samples))
                p90 = timings[int(0.9 * (len(timings) - 1))]
                print(f"| {label} | {statistics.median(timings):.1f} ms | {p90:.1f} ms |")
            total = client.post("/threads/search", json={"limit": 1}).headers["X-Pagination-Total"]
            assert int(total) == args.threads, f"an unfiltered total of {total}"
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
