"""How a serving process holds its memory: the C allocator gives large blocks back to the system
when freed, and Python's cyclic collector leaves alone what the process made to start.

The C allocator: glibc serves a block over its mmap threshold (128 KiB) with a mapping of its
own, unmapped when freed. But once such a block is freed it raises the threshold to that block's
size (up to 32 MiB), so the blocks of the next large request come from the heap, where freed
memory stays resident. Measured on the 20 MiB request of bench/compare.py: without a fixed
threshold the server kept 120-220 MiB more after each of three such runs; with it, none after
the first. `MALLOC_MMAP_THRESHOLD_` in the environment, glibc's own setting, is left to rule.

The collector: a started server holds some 200,000 objects (modules, classes, compiled graphs,
the app) for as long as it lives, and each full collection went through all of them again:
60 ms a time, seven times in 8 s of runs, 8% of the CPU per run with the young collections.
Frozen once the server has started, they are out of every collection (`gc.freeze`).

Young collections: the collector looks at the youngest generation once 700 more objects were
made than freed. Under load most of those belong to runs still in flight, so each collection
went through live objects and moved them into older generations, to be gone through again:
150-190 us of CPU per run at 64 clients, 5-6% of it. Above what the runs in flight hold, the
count rarely reaches the threshold, and cyclic garbage is still collected once it does
(bench/README.md, "Young collections").
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform

MMAP_THRESHOLD_BYTES = 128 * 1024
YOUNG_COLLECTION_THRESHOLD = 10_000  # Python's default is 700
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


def return_large_blocks_to_the_system() -> bool:
    """Fix glibc's mmap threshold; False where the C library is not glibc or the environment
    sets the threshold."""
    if platform.libc_ver()[0] != "glibc" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def freeze_startup_objects() -> None:
    """Collect what starting left as garbage, then keep every object alive now out of later
    collections."""
    gc.collect()
    gc.freeze()


def collect_young_objects_less_often() -> None:
    """Raise the youngest generation's threshold to `YOUNG_COLLECTION_THRESHOLD`; the older
    generations' stay."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)
