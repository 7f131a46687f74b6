"""A conversation as it grows: the p50 latency and the server CPU of sequential stateful
`POST /threads/{id}/runs/wait` on one thread, block after block, until the thread holds
thousands of runs. A run on a thread looks for the thread's pending and running runs as it is
created and as it ends; this shows whether that cost grows with the runs the thread has finished.

Servers: Stead on its embedded default and on PostgreSQL 15 + Redis 7 (as in compare.py), and
with `--base` the same runtimes from another checkout's `src` (`embedded@base`, ...), started side
by side and measured block by block in alternation, so that a slow spell of the machine falls on
both. The official server is not in it: its queue polls about once a second, so 2,000 sequential
runs on one thread would take it over half an hour (compare.py measures its stateful p50).

    python bench/long_thread.py [--runs 2000] [--block 250] [--servers embedded,pg-redis]
                                [--base path/to/src]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.compare import (  # noqa: E402
    Server,
    client_session,
    post_json,
    start,
    stateful_waits,
    stateless_runs,
)


@dataclass
class Conversation:
    """One server's thread, and a figure per block of runs on it."""

    server: Server
    thread_id: str | None = None
    p50_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)


async def _block(conversation: Conversation, runs: int) -> None:
    """`runs` more sequential runs on the conversation's thread."""
    async with client_session(conversation.server.url) as http:
        if conversation.thread_id is None:
            conversation.thread_id = (await post_json(http, "/threads", b"{}"))["thread_id"]
        cpu_before = conversation.server.cpu_seconds()
        timings = await stateful_waits(http, conversation.thread_id, runs)
    conversation.cpu_ms.append(1000 * (conversation.server.cpu_seconds() - cpu_before) / runs)
    conversation.p50_ms.append(1000 * statistics.median(timings))


def measure(servers: dict[str, Server], runs: int, block: int) -> dict[str, Conversation]:
    conversations = {name: Conversation(server) for name, server in servers.items()}
    names = list(conversations)
    for number in range(runs // block):
        for name in names if number % 2 == 0 else reversed(names):
            asyncio.run(_block(conversations[name], block))
        done = (number + 1) * block
        print(f"# {done} runs on each thread", file=sys.stderr, flush=True)
    return conversations


def table(conversations: dict[str, Conversation], block: int) -> str:
    names = list(conversations)
    header = "| runs on the thread | " + " | ".join(f"{name} p50, CPU/run" for name in names)
    lines = [header + " |", "|---" * (len(names) + 1) + "|"]
    blocks = len(next(iter(conversations.values())).p50_ms)
    for number in range(blocks):
        cells = [
            f"{c.p50_ms[number]:.2f} ms, {c.cpu_ms[number]:.2f} ms" for c in conversations.values()
        ]
        lines.append(f"| {number * block + 1}-{(number + 1) * block} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--block", type=int, default=250)
    parser.add_argument("--servers", default="embedded,pg-redis")
    parser.add_argument("--base", type=Path, help="the src folder of a Stead to run beside")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    with ExitStack() as stack:
        servers: dict[str, Server] = {}
        for name in args.servers.split(","):
            variants = (
                [(name, None)] if args.base is None else [(f"{name}@base", args.base), (name, None)]
            )
            for label, source in variants:
                print(f"# starting {label}", file=sys.stderr, flush=True)
                servers[label] = stack.enter_context(start(name, source))
                asyncio.run(stateless_runs(servers[label].url, 4, 1.0))  # warm-up
        conversations = measure(servers, args.runs, args.block)
    load_after = os.getloadavg()
    print(table(conversations, args.block))
    print(
        f"\n{os.cpu_count()} CPUs; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after; blocks of {args.block} runs, servers in alternation"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
