"""Loaded by a server started with this folder on PYTHONPATH (tests/integration/test_footprint.py):
on SIGUSR1 it writes how many objects its collector keeps frozen to $STEAD_GC_PROBE_OUT."""

import gc
import os
import signal


def _report(_signum: int, _frame: object) -> None:
    with open(os.environ["STEAD_GC_PROBE_OUT"], "w") as out:
        out.write(str(gc.get_freeze_count()))


if os.environ.get("STEAD_GC_PROBE_OUT"):
    signal.signal(signal.SIGUSR1, _report)
