"""Loaded by a server started with this folder on PYTHONPATH (tests/integration/test_footprint.py):
on SIGUSR1 it writes to $STEAD_GC_PROBE_OUT how many objects its collector keeps frozen, on the
first line, its collector's thresholds on the second, its GIL switch interval on the third, then
the names of the modules it has imported, one a line."""

import gc
import os
import signal
import sys


def _report(_signum: int, _frame: object) -> None:
    partial = os.environ["STEAD_GC_PROBE_OUT"] + ".partial"
    with open(partial, "w") as out:
        thresholds = " ".join(map(str, gc.get_threshold()))
        interval = str(sys.getswitchinterval())
        lines = [str(gc.get_freeze_count()), thresholds, interval, *sorted(sys.modules)]
        out.write("\n".join(lines))
    os.replace(partial, os.environ["STEAD_GC_PROBE_OUT"])


if os.environ.get("STEAD_GC_PROBE_OUT"):
    signal.signal(signal.SIGUSR1, _report)
