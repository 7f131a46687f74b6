"""How soon a thread that waits for the GIL gets it from a busy event loop.

LangGraph runs a graph's synchronous nodes on a thread pool: a hop to a pool thread each time
such a node runs (one per run of the one-node `echo`). The pool thread must take the GIL from the
event loop's thread, which under load always has work and gives the GIL up only when made to:
once the waiting thread has waited the interpreter's switch interval, 5 ms by default. The run
waits up to that long at each hop.

At 1 ms the embedded default served more runs per second, with less CPU per run, at 1, 16 and 64
clients; a graph of asynchronous nodes (no hop) and PostgreSQL + Redis (whose event loops wait on
their database, so the GIL is free sooner) saw no difference (bench/README.md, "The GIL handed
to a waiting thread after 1 ms"). A thread that computes for long is made to hand over more
often: at most once a millisecond, a few microseconds each time.
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_SECONDS = 0.001  # Python's default is 0.005


def hand_the_gil_over_sooner() -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
