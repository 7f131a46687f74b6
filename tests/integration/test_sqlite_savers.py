"""The embedded default's checkpointer writes its rows itself (stead.storage.sqlite_savers): the
rows must be the very rows LangGraph's own SQLite saver writes, so that LangGraph reads them back
and a later release's layout change fails here; and a write that fails leaves none of its rows.

Reference: src/stead/storage/sqlite_savers.py; issue 16.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import ERROR, INTERRUPT, BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from stead.config import load_settings
from stead.storage import Database
from stead.storage.backends import open_savers
from stead.storage.fencing import attempts_writing, writing_as
from stead.storage.sqlite_inline import LARGE_VALUE_BYTES
from stead.storage.sqlite_savers import FencedSqliteSaver
from tests.conftest import GRAPHS_CONFIG

THREAD = "thread-1"


@contextlib.asynccontextmanager
async def _stead_saver(data_dir: Path) -> AsyncIterator[FencedSqliteSaver]:
    data_dir.mkdir(exist_ok=True)
    settings = load_settings(GRAPHS_CONFIG, data_dir=data_dir)
    db = Database(settings.database_url)
    await db.migrate()
    async with contextlib.AsyncExitStack() as stack:
        saver, _store = await open_savers(settings, stack, None)
        assert isinstance(saver, FencedSqliteSaver)
        yield saver
    await db.close()


def _config(checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": THREAD, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable, "metadata": {"user": "ünïcode"}}


async def _write_history(saver: BaseCheckpointSaver[Any], steps: list[Any]) -> None:
    """Two checkpoints, the second with the first as parent, and writes of both kinds, each
    written twice: a task's special writes (errors, interrupts) replace those of an earlier try,
    its others stay as first written."""
    first, second = steps
    saved = await saver.aput(_config(), first, {"source": "input", "step": -1}, {})
    await saver.aput_writes(saved, [("text", "a"), ("other", {"n": 1})], "task-1", "path")
    await saver.aput_writes(saved, [("text", "changed"), ("other", {"n": 2})], "task-1", "path")
    await saver.aput_writes(saved, [(ERROR, "first error")], "task-2")
    await saver.aput_writes(saved, [(ERROR, "second error")], "task-2")
    await saver.aput_writes(saved, [(INTERRUPT, {"value": "?"})], "task-3")
    config = _config(saved["configurable"]["checkpoint_id"])
    await saver.aput(config, second, {"source": "loop", "step": 0}, {"text": "2"})


def _rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4").fetchall()
            for table in ("checkpoints", "writes")
        }


async def test_its_rows_are_those_langgraphs_own_saver_writes(tmp_path: Path) -> None:
    steps = [empty_checkpoint(), empty_checkpoint()]
    steps[0]["channel_values"] = {"text": "hi"}
    steps[1]["channel_values"] = {"text": "hi", "other": [1, 2]}
    reference_path = tmp_path / "reference.sqlite"
    async with AsyncSqliteSaver.from_conn_string(str(reference_path)) as reference:
        await _write_history(reference, steps)
    async with _stead_saver(tmp_path / "stead") as saver:
        await _write_history(saver, steps)
        stead_rows = _rows(tmp_path / "stead" / "checkpoints.sqlite")
        assert stead_rows == _rows(reference_path)
        assert len(stead_rows["checkpoints"]) == 2
        values = {(row[3], row[6]): row[8] for row in stead_rows["writes"]}
        assert len(values) == 4
        assert b"second error" in values["task-2", ERROR]
        assert b"changed" not in values["task-1", "text"]

        found = await saver.aget_tuple(_config())
        assert found is not None and found.checkpoint["channel_values"]["other"] == [1, 2]
        assert found.metadata["user"] == "ünïcode"
        assert found.parent_config is not None

        await saver.adelete_thread(THREAD)
        assert _rows(tmp_path / "stead" / "checkpoints.sqlite") == {
            "checkpoints": [],
            "writes": [],
        }


async def test_a_write_that_fails_leaves_none_of_its_rows(tmp_path: Path) -> None:
    async with _stead_saver(tmp_path) as saver:
        saved = await saver.aput(_config(), empty_checkpoint(), {}, {})
        # The second of a task's writes fails after the first was inserted.
        conn = saver.conn._conn
        conn.execute(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON writes WHEN NEW.channel = 'boom'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
        with pytest.raises(sqlite3.IntegrityError, match="refused"):
            await saver.aput_writes(saved, [("text", "kept?"), ("boom", 1)], "task")
        await asyncio.sleep(0)  # the turn's transaction ends with the turn
        assert not conn.in_transaction
        assert _rows(tmp_path / "checkpoints.sqlite")["writes"] == []
        # A later write commits only its own rows.
        await saver.aput_writes(saved, [("text", "later")], "other-task")
        writes = _rows(tmp_path / "checkpoints.sqlite")["writes"]
        assert [(row[3], row[6]) for row in writes] == [("other-task", "text")]


async def test_a_large_write_commits_at_once_while_other_runs_write(tmp_path: Path) -> None:
    """Its transaction is not shared with the turn's other writes: it ends at once, and the
    connection that bound the large value is replaced sooner (bench/README.md)."""
    async with _stead_saver(tmp_path) as saver:
        others_may_write = asyncio.Event()

        async def another_run(number: int) -> None:
            with writing_as(f"run-{number}", 1):
                await others_may_write.wait()

        others = [asyncio.create_task(another_run(number)) for number in range(2)]
        await asyncio.sleep(0)
        assert attempts_writing() == 2
        statements: list[str] = []
        saver.conn._conn.set_trace_callback(statements.append)
        large = empty_checkpoint()
        large["channel_values"] = {"text": "x" * (LARGE_VALUE_BYTES + 1)}
        small = empty_checkpoint()
        await asyncio.gather(
            saver.aput(_config(), large, {}, {}), saver.aput(_config(), small, {}, {})
        )
        others_may_write.set()
        await asyncio.gather(*others)
        # The large checkpoint's INSERT is committed before the small one's is made.
        kinds = [sql.split()[0] for sql in statements if sql.startswith(("INSERT", "COMMIT"))]
        assert kinds[:2] == ["INSERT", "COMMIT"], statements
