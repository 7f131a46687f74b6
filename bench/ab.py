"""This checkout beside another revision of Stead, on one runtime, for a change too small for two
separate runs of bench/compare.py to tell apart on a noisy machine: both are started at once and
measured in turn, in interleaved rounds (medians).

- the sequential stateful `runs/wait` of `echo`: its p50;
- stateless `runs/wait` of `echo` at each `--clients` level: runs/s, and the server's CPU per run
  (API and worker together on PostgreSQL + Redis) above one client.

    python bench/ab.py --base REV [--runtime embedded|pg-redis] [--clients 1,16,64]
                       [--rounds 6] [--seconds 4] [--json out.json]

`--base`'s `src` is taken with `git archive` into a temporary folder. See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.compare import (  # noqa: E402
    Server,
    interleaved,
    merge,
    report,
    stateful_level,
    stateless_level,
)
from bench.regressions import RUNTIMES, started_beside  # noqa: E402

Figures = dict[str, float]


def measure(
    servers: dict[str, Server], clients: list[int], seconds: float, rounds: int
) -> dict[str, Figures]:
    results: dict[str, Figures] = {name: {} for name in servers}
    levels: list[Callable[[Server], Figures]] = [stateful_level]
    levels += [partial(stateless_level, level, seconds) for level in clients]
    for level in levels:
        merge(results, interleaved(servers, rounds, level))
    return results


def table(results: dict[str, Figures], base: str) -> str:
    lines = [f"| | {base} | this checkout | this / {base} |", "|---|---|---|---|"]
    for key, before in results["base"].items():
        after = results["now"][key]
        lines.append(f"| {key} | {before:.2f} | {after:.2f} | {after / before:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the revision to compare with")
    parser.add_argument("--runtime", choices=RUNTIMES, default="embedded")
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    clients = [int(level) for level in args.clients.split(",")]
    load_before = os.getloadavg()
    with ExitStack() as stack:
        servers = started_beside(stack, args.base, args.runtime)
        results = measure(servers, clients, args.seconds, args.rounds)
    how = f"medians of {args.rounds} interleaved rounds, load levels of {args.seconds:g} s; "
    report(table(results, args.base), results, load_before, how + args.runtime, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
