"""The embedded default's WAL checkpoints run on a thread of their own, not in the commit that
fills the WAL past 1,000 pages (on the event loop's thread): committed pages reach the database
file without a commit copying them, in a file of the server's too; a commit leaves that work to
the thread up to the fallback; and a checkpoint that fails is told once and tried again.

A row is looked for in the database file alone, as SQLite reads it with `immutable=1` (the WAL
ignored): there only once a checkpoint copied it.

Reference: src/stead/storage/sqlite_wal.py; issue 16.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from langgraph_sdk import get_sync_client

from stead.storage.sqlite_wal import FALLBACK_PAGES, WalCheckpoints, use_wal
from tests.conftest import GRAPHS_CONFIG
from tests.support.servers import stead_server

PAGE = 4096


def _file_alone_holds(path: Path, sql: str, *parameters: object) -> bool:
    """Whether `sql` finds a row in the database file itself, its WAL ignored."""
    try:
        with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as file_alone:
            return file_alone.execute(sql, parameters).fetchone() is not None
    except sqlite3.DatabaseError:  # the table is not in the file yet
        return False


@contextlib.contextmanager
def _wal_file(path: Path, rows: int) -> Iterator[None]:
    """`rows` rows, one commit each (a page written each), in a file in WAL mode. Inside the
    block a second connection keeps the file open: the last connection's closing would
    checkpoint it."""
    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        use_wal(writer)
        writer.execute("CREATE TABLE item (n INTEGER PRIMARY KEY, body BLOB)")
        with closing(sqlite3.connect(path, isolation_level=None)) as reader:
            reader.execute("SELECT count(*) FROM item").fetchall()
            for n in range(rows):
                writer.execute("INSERT INTO item VALUES (?, ?)", (n, bytes(PAGE // 4)))
            writer.close()
            yield


def _checkpoint_threads() -> int:
    return sum(thread.name == "wal-checkpoints" for thread in threading.enumerate())


def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_a_commit_leaves_the_checkpoint_to_the_thread_up_to_the_fallback(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite"
    # Past SQLite's default of 1,000 pages, where the commit itself would have checkpointed.
    rows = 1_500
    assert rows < FALLBACK_PAGES
    with _wal_file(path, rows):
        assert not _file_alone_holds(path, "SELECT 1 FROM item WHERE n = 0")
        assert (tmp_path / "a.sqlite-wal").stat().st_size > 1_000 * PAGE


def test_the_thread_copies_committed_pages_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    with _wal_file(path, 10):
        assert not _file_alone_holds(path, "SELECT 1 FROM item WHERE n = 9")
        threads_before = _checkpoint_threads()
        checkpoints = WalCheckpoints([path], interval=0.01)
        checkpoints.start()
        try:
            assert _eventually(lambda: _file_alone_holds(path, "SELECT 1 FROM item WHERE n = 9"))
        finally:
            checkpoints.close()
        assert _checkpoint_threads() == threads_before


def test_a_failing_checkpoint_is_told_once_and_tried_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"not a database" * 1_000)
    threads_before = _checkpoint_threads()
    checkpoints = WalCheckpoints([path], interval=0.01)
    with caplog.at_level(logging.WARNING, logger="stead.storage"):
        checkpoints.start()
        time.sleep(0.3)  # about thirty tries
        assert _checkpoint_threads() == threads_before + 1
        checkpoints.close()
    failures = [r.getMessage() for r in caplog.records if "WAL checkpoint failed" in r.getMessage()]
    assert len(failures) == 1, failures
    assert "not a database" in failures[0]


def test_the_embedded_servers_files_are_checkpointed_while_it_serves(tmp_path: Path) -> None:
    with stead_server(GRAPHS_CONFIG, tmp_path / "data") as server:
        thread = get_sync_client(url=server.url).threads.create()
        assert _eventually(
            lambda: _file_alone_holds(
                tmp_path / "data" / "stead.sqlite",
                "SELECT 1 FROM thread WHERE thread_id = ?",
                thread["thread_id"],
            )
        )
