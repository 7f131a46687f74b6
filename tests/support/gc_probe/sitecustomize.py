"""Loaded by a server started with this folder on PYTHONPATH (tests/integration/test_footprint.py):
on SIGUSR1 it writes to $STEAD_GC_PROBE_OUT how many objects its collector keeps frozen, on the
first line, its collector's thresholds on the second, then the names of the modules it has
imported, one a line."""

import gc
import os
import signal
import sys


def _report(_signum: int, _frame: object) -> None:
    partial = os.environ["STEAD_GC_PROBE_OUT"] + ".partial"
    with open(partial, "w") as out:
        thresholds = " ".join(map(str, gc.get_threshold()))
        out.write("\n".join([str(gc.get_freeze_count()), thresholds, *sorted(sys.modules)]))
    os.replace(partial, os.environ["STEAD_GC_PROBE_OUT"])


if os.environ.get("STEAD_GC_PROBE_OUT"):
    signal.signal(signal.SIGUSR1, _report)
