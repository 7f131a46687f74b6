"""The embedded default's SQLite files in WAL mode, and their checkpoints on a thread of their own.

By default SQLite checkpoints a WAL in the commit that takes it past 1,000 pages: that commit
copies the pages into the database file and syncs both files. Stead commits on the event loop's
thread (stead.storage.sqlite_inline), so one run in about forty held the loop for 3-5 ms, and
every client's request with it. Here a thread checkpoints each file a tenth of a second apart;
SQLite releases the GIL while it copies and syncs.

A commit still checkpoints a WAL past `FALLBACK_PAGES`. A checkpoint beside the writers cannot
restart the WAL while they keep adding to it, so under load the WAL grows until a commit finds
it that long; the thread has copied most of it by then. At 1,000 pages that happened at a few
hundred runs a second already; at 10,000 the CPU per run under load rose a few percent
(bench/README.md).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import ExitStack, closing
from pathlib import Path

FALLBACK_PAGES = 4_000  # about 16 MB of WAL
INTERVAL_SECONDS = 0.1

logger = logging.getLogger("stead.storage")


def use_wal(conn: sqlite3.Connection) -> None:
    """Set up one of Stead's connections: WAL mode, synced at checkpoints (committed writes
    survive a crash of the process; the last ones may not survive the machine's), and the
    commit's own checkpoint moved to the fallback (module docstring)."""
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")


class WalCheckpoints:
    """A thread that checkpoints the WAL of each of `paths` every `interval` seconds, through
    connections of its own, until `close`."""

    def __init__(self, paths: Sequence[Path], interval: float = INTERVAL_SECONDS) -> None:
        self._paths = list(paths)
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)
        self._last_failure = ""

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        with ExitStack() as connections:
            try:
                files = [
                    connections.enter_context(closing(sqlite3.connect(path, isolation_level=None)))
                    for path in self._paths
                ]
            except sqlite3.Error as exc:
                self._note_failure(str(exc))
                return
            while not self._stopped.wait(self._interval):
                for conn in files:
                    self._checkpoint(conn)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # PASSIVE waits for no reader or writer: it copies what none of them still needs.
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            self._note_failure(str(exc))
        else:
            self._last_failure = ""

    def _note_failure(self, failure: str) -> None:
        # Once per kind of failure, not ten times a second (a full disk fails every commit too).
        if failure != self._last_failure:
            logger.warning("a WAL checkpoint failed (commits still make their own): %s", failure)
        self._last_failure = failure
