"""Issue 16's "no regression elsewhere", measured: Stead as the issue found it beside this checkout.

Both on the embedded default (or both on PostgreSQL + Redis, one API process and one worker, with
`--runtime pg-redis`), started at once; the scenarios run on each in turn in interleaved rounds
(the medians are printed):

- one `runs/stream` of graph `ticker` writing `--events` custom events: the first event's latency
  and the events/s (medians of five, one after the other);
- `--streams` such streams at once: events/s over them all, and the events lost (each stream's
  indices must come 0, 1, 2, ... and all of them);
- a chain of ten `runs/wait` of `echo` in a row on one new thread: the seconds the ten took;
- 64 `runs/wait` of `slow` (0.5 s each) sent at once: the seconds until the last answered, with
  the default `N_JOBS_PER_WORKER` (10 at a time).

    python bench/regressions.py [--base 777d484] [--runtime embedded|pg-redis] [--rounds 3]
                                [--events 1000] [--streams 50] [--json out.json]

`--base` is the revision to compare with (default: the commit Stead was at when issue 16 was
filed), its `src` taken with `git archive` into a temporary folder. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.compare import (  # noqa: E402
    Server,
    client_session,
    interleaved,
    post_json,
    report,
    start,
)

ISSUE_FILED_AT = "777d484"  # main on 2026-12-02, when issue 16 measured Stead
CHAIN_LENGTH = 10
SLOW_RUNS = 64
SLOW_SECONDS = 0.5
RUNTIMES = ("embedded", "pg-redis")  # as bench/compare.py starts them
SINGLE_STREAMS = 5  # one after the other, per round: their medians
# Counts that must stay zero: summed over the rounds, not taken as a median.
LOSSES = ("lost", "concurrent_lost")

Figures = dict[str, float]


@contextmanager
def source_at(revision: str) -> Iterator[Path]:
    """The `src` folder of `revision`, extracted into a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="stead-base-") as folder:
        archive = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "archive", revision, "src"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield Path(folder) / "src"


def started_beside(stack: ExitStack, base: str, runtime: str) -> dict[str, Server]:
    """Stead at revision `base` and this checkout, started on `runtime` and kept running until
    `stack` closes: "base" and "now"."""
    base_source = stack.enter_context(source_at(base))
    return {
        "base": stack.enter_context(start(runtime, base_source)),
        "now": stack.enter_context(start(runtime, None)),
    }


async def one_stream(http: aiohttp.ClientSession, events: int) -> tuple[float, float, int]:
    """A `runs/stream` of `ticker` on a new thread: seconds to its first custom event, seconds to
    its end, and how many of its `events` indices did not arrive in order."""
    thread_id = (await post_json(http, "/threads", b"{}"))["thread_id"]
    body = {"assistant_id": "ticker", "input": {"count": events}, "stream_mode": ["custom"]}
    started = time.perf_counter()
    first: float | None = None
    expected = 0
    async with http.post(f"/threads/{thread_id}/runs/stream", json=body) as response:
        assert response.status == 200, await response.text()
        event = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event == "custom":
                first = first if first is not None else time.perf_counter() - started
                if json.loads(line[len("data: ") :])["index"] == expected:
                    expected += 1
    assert first is not None, "no custom event came"
    return first, time.perf_counter() - started, events - expected


async def stream_figures(url: str, events: int, streams: int) -> Figures:
    async with client_session(url, streams) as http:
        single = [await one_stream(http, events) for _ in range(SINGLE_STREAMS)]
        started = time.perf_counter()
        many = await asyncio.gather(*(one_stream(http, events) for _ in range(streams)))
        wall = time.perf_counter() - started
    return {
        "first_event_ms": 1000 * statistics.median(first for first, _, _ in single),
        "events_per_s": events / statistics.median(total for _, total, _ in single),
        "lost": sum(lost for _, _, lost in single),
        "concurrent_events_per_s": streams * events / wall,
        "concurrent_lost": sum(lost for _, _, lost in many),
    }


async def chain_seconds(url: str) -> float:
    """Ten `runs/wait` in a row on one new thread, each answered with its input."""
    async with client_session(url) as http:
        thread_id = (await post_json(http, "/threads", b"{}"))["thread_id"]
        started = time.perf_counter()
        for link in range(CHAIN_LENGTH):
            body = {"assistant_id": "echo", "input": {"text": f"link {link}"}}
            answer = await post_json(
                http, f"/threads/{thread_id}/runs/wait", json.dumps(body).encode()
            )
            assert answer == {"text": f"link {link}"}, answer
        return time.perf_counter() - started


async def slow_runs_seconds(url: str) -> float:
    """64 stateless `runs/wait` of `slow` sent at once: seconds until the last answered."""
    body = json.dumps({"assistant_id": "slow", "input": {"seconds": SLOW_SECONDS}}).encode()
    async with client_session(url, SLOW_RUNS) as http:
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(post_json(http, "/runs/wait", body) for _ in range(SLOW_RUNS))
        )
        seconds = time.perf_counter() - started
    done = {"seconds": SLOW_SECONDS, "done": True}
    assert all(answer == done for answer in answers), answers[:3]
    return seconds


def measure(server: Server, events: int, streams: int) -> Figures:
    figures = asyncio.run(stream_figures(server.url, events, streams))
    figures["chain_of_10_s"] = asyncio.run(chain_seconds(server.url))
    figures["slow_64_s"] = asyncio.run(slow_runs_seconds(server.url))
    return figures


ROWS = [
    ("one stream: first event", "first_event_ms", "{:.1f} ms", False),
    ("one stream: events/s", "events_per_s", "{:.0f}", True),
    ("one stream: events lost", "lost", "{:.0f}", False),
    ("streams at once: events/s", "concurrent_events_per_s", "{:.0f}", True),
    ("streams at once: events lost", "concurrent_lost", "{:.0f}", False),
    ("chain of 10 `runs/wait` on a thread", "chain_of_10_s", "{:.3f} s", False),
    ("64 x 0.5 s runs at once", "slow_64_s", "{:.2f} s", False),
]


def table(results: dict[str, Figures], base: str) -> str:
    lines = [
        f"| | Stead at {base} | this checkout | this checkout vs {base} |",
        "|---|---|---|---|",
    ]
    for label, key, shape, higher_is_better in ROWS:
        then, now = results["base"][key], results["now"][key]
        if key in LOSSES:
            verdict = "same" if now == then == 0 else "LOST EVENTS" if now else "fewer lost"
        else:
            ratio = now / then
            better = ratio >= 1 if higher_is_better else ratio <= 1
            verdict = f"{ratio:.2f}x{'' if better else ' (worse)'}"
        lines.append(f"| {label} | {shape.format(then)} | {shape.format(now)} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=ISSUE_FILED_AT, help="the revision to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=1000, help="custom events per stream")
    parser.add_argument("--streams", type=int, default=50, help="streams at once")
    parser.add_argument("--runtime", choices=RUNTIMES, default="embedded")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with ExitStack() as stack:
        servers = started_beside(stack, args.base, args.runtime)
        for server in servers.values():
            # A server's first requests load what later ones reuse.
            asyncio.run(stream_figures(server.url, 10, 2))
            asyncio.run(chain_seconds(server.url))
        results = interleaved(
            servers, args.rounds, lambda server: measure(server, args.events, args.streams), LOSSES
        )
    how = (
        f"medians of {args.rounds} interleaved rounds (losses summed over them); "
        f"{args.streams} streams at once, {args.events} events each; {args.runtime}"
    )
    report(table(results, args.base), results, load_before, how, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
