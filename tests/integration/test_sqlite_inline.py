"""The embedded default's SQLite connections run their statements on the event loop's thread
(no aiosqlite worker thread), for Stead's tables, the checkpoints and the store, and keep
aiosqlite's behaviour: transactions, closing, errors.

Stead's tables go through InlineEngine: one connection, taken in turns without blocking the
event loop; its stand-alone (`autocommit`) blocks share one commit per turn of the event loop, as
the checkpoint connection's writes do.

Reference: src/stead/storage/sqlite_inline.py; issue 16.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from stead.config import load_settings
from stead.storage import Database
from stead.storage.backends import open_savers
from stead.storage.sqlite_inline import (
    LARGE_VALUE_BYTES,
    InlineConnection,
    InlineEngine,
    LargeValues,
    connect,
)
from tests.conftest import GRAPHS_CONFIG


async def test_statements_run_on_the_calling_thread_and_start_no_thread(tmp_path: Path) -> None:
    threads_before = threading.active_count()
    conn = await connect(tmp_path / "a.sqlite")
    await conn.create_function("runner", 0, threading.get_ident)
    async with conn.execute("SELECT runner()") as cursor:
        row = await cursor.fetchone()
    assert row is not None and row[0] == threading.get_ident()
    assert threading.active_count() == threads_before
    await conn.close()


async def test_a_closed_connection_refuses_work_and_releases_the_file(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    conn = await connect(path)
    await conn.execute("CREATE TABLE t (x INTEGER)")
    await conn.execute("BEGIN IMMEDIATE")
    await conn.execute("INSERT INTO t VALUES (1)")
    await conn.close()
    with pytest.raises(ValueError, match="no active connection"):
        await conn.execute("SELECT 1")
    # The write lock went with the connection, and the uncommitted row with it.
    other = sqlite3.connect(path, timeout=0)
    other.execute("INSERT INTO t VALUES (2)")
    other.commit()
    assert other.execute("SELECT x FROM t").fetchall() == [(2,)]
    other.close()


async def test_errors_come_back_as_sqlites_own(tmp_path: Path) -> None:
    async with connect(tmp_path / "c.sqlite") as conn:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await conn.execute("SELECT * FROM missing")


async def test_stead_tables_checkpoints_and_store_all_use_it(tmp_path: Path) -> None:
    settings = load_settings(GRAPHS_CONFIG, data_dir=tmp_path)
    db = Database(settings.database_url)
    await db.migrate()
    threads_before = threading.active_count()
    async with db.engine.connect() as conn:
        await conn.run_sync(_add_runner_function)
        runner = (await conn.execute(sa.text("SELECT runner()"))).scalar()
    assert runner == threading.get_ident()
    assert threading.active_count() == threads_before
    async with contextlib.AsyncExitStack() as stack:
        checkpointer, store = await open_savers(settings, stack, None)
        assert isinstance(checkpointer.conn, InlineConnection)
        assert isinstance(store.conn, InlineConnection)
    await db.close()


def _add_runner_function(conn: sa.Connection) -> None:
    sqlite_connection = conn.connection.driver_connection
    assert isinstance(sqlite_connection, sqlite3.Connection)
    sqlite_connection.create_function("runner", 0, threading.get_ident)


async def test_a_rolled_back_transaction_leaves_nothing(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'd.sqlite'}")
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    with pytest.raises(RuntimeError, match="abandon"):
        async with db.engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("abandon")
    async with db.engine.begin() as conn:
        await conn.execute(sa.text("INSERT INTO t VALUES (2)"))
    async with db.engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT x FROM t"))).scalars().all() == [2]
    await db.close()


def _inline_engine(
    path: Path, timeout: float, large_values: LargeValues | None = None
) -> InlineEngine:
    engine = sa.create_engine(f"sqlite:///{path}", pool_size=1, max_overflow=0)
    return InlineEngine(engine, timeout, large_values or LargeValues())


async def test_transactions_take_the_one_connection_in_turns(tmp_path: Path) -> None:
    engine = _inline_engine(tmp_path / "e.sqlite", timeout=5)
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    first_holds = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            first_holds.set()
            await release_first.wait()

    async def second() -> list[int]:
        await first_holds.wait()
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (2)"))
            return list((await conn.execute(sa.text("SELECT x FROM t"))).scalars())

    holder = asyncio.create_task(first())
    waiter = asyncio.create_task(second())
    await first_holds.wait()
    await asyncio.sleep(0.05)
    # The event loop is not blocked while the second waits its turn, and it has not run yet.
    assert not waiter.done()
    release_first.set()
    await holder
    assert await waiter == [1, 2]
    await engine.dispose()


async def test_a_transaction_that_waits_too_long_fails_as_an_exhausted_pool(tmp_path: Path) -> None:
    engine = _inline_engine(tmp_path / "f.sqlite", timeout=0.1)
    async with engine.begin():
        with pytest.raises(sa.exc.TimeoutError, match=r"busy for 0\.1 s"):
            async with engine.begin():
                pass
    async with engine.begin() as conn:
        assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
    await engine.dispose()


async def test_a_cancelled_transaction_rolls_back_and_frees_the_connection(tmp_path: Path) -> None:
    engine = _inline_engine(tmp_path / "g.sqlite", timeout=1)
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    inserted = asyncio.Event()

    async def abandoned() -> None:
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
            inserted.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(abandoned())
    await inserted.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    async with engine.connect() as conn:
        assert list((await conn.execute(sa.text("SELECT x FROM t"))).scalars()) == []
    await engine.dispose()


async def test_the_connection_is_kept_between_turns_and_counted_in_use_during_one(
    tmp_path: Path,
) -> None:
    engine = _inline_engine(tmp_path / "h.sqlite", timeout=1)
    seen = []
    for _ in range(2):
        assert engine.connections_in_use() == 0
        async with engine.begin() as conn:
            assert engine.connections_in_use() == 1
            seen.append(await conn.run_sync(lambda c: c.connection.driver_connection))
    assert seen[0] is seen[1]
    await engine.dispose()


async def test_a_read_outside_a_transaction_ends_with_its_turn(tmp_path: Path) -> None:
    engine = _inline_engine(tmp_path / "i.sqlite", timeout=1)
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    async with engine.connect() as conn:
        await conn.execute(sa.text("SELECT x FROM t"))
        assert await conn.run_sync(lambda c: c.in_transaction())
    async with engine.begin() as conn:
        assert await conn.run_sync(lambda c: c.in_transaction())
        await conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    async with engine.connect() as conn:
        assert list((await conn.execute(sa.text("SELECT x FROM t"))).scalars()) == [1]
    await engine.dispose()


async def test_an_invalidated_connection_is_replaced(tmp_path: Path) -> None:
    engine = _inline_engine(tmp_path / "j.sqlite", timeout=1)
    async with engine.connect() as conn:
        first = await conn.run_sync(lambda c: c.connection.driver_connection)
        await conn.run_sync(lambda c: c.invalidate())
    async with engine.begin() as conn:
        assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
        assert await conn.run_sync(lambda c: c.connection.driver_connection) is not first
    await engine.dispose()


async def _turn_writes(tmp_path: Path) -> tuple[InlineConnection, list[str]]:
    """A connection with a table `item`, and the statements it runs from now on."""
    conn = await connect(tmp_path / "turns.sqlite")
    driver = conn.sqlite_connection()
    driver.execute("CREATE TABLE item (name TEXT PRIMARY KEY)")
    driver.commit()
    statements: list[str] = []
    driver.set_trace_callback(statements.append)
    return conn, statements


async def _write_item(conn: InlineConnection, name: str) -> None:
    with conn.turn_write():
        conn.run("INSERT INTO item VALUES (?)", (name,))
    await conn.commit_turn()


def _committed_items(path: Path) -> list[str]:
    with contextlib.closing(sqlite3.connect(path)) as reader:
        return [name for (name,) in reader.execute("SELECT name FROM item ORDER BY name")]


async def test_writes_of_one_turn_share_a_commit_and_return_once_committed(tmp_path: Path) -> None:
    conn, statements = await _turn_writes(tmp_path)
    names = [f"run-{n}" for n in range(8)]
    await asyncio.gather(*(_write_item(conn, name) for name in names))
    assert statements.count("COMMIT") == 1
    # Each returned after its row was committed: another connection reads them all.
    assert _committed_items(tmp_path / "turns.sqlite") == names
    await _write_item(conn, "later")
    assert statements.count("COMMIT") == 2
    assert "later" in _committed_items(tmp_path / "turns.sqlite")
    await conn.close()


async def test_a_failed_write_undoes_only_its_own_statements(tmp_path: Path) -> None:
    conn, _ = await _turn_writes(tmp_path)

    async def failing() -> None:
        with conn.turn_write():
            conn.run("INSERT INTO item VALUES ('half')")
            conn.run("INSERT INTO item VALUES ('first')")  # already there: fails

    results = await asyncio.gather(
        _write_item(conn, "first"), failing(), _write_item(conn, "second"), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert _committed_items(tmp_path / "turns.sqlite") == ["first", "second"]
    assert not conn.sqlite_connection().in_transaction
    await conn.close()


async def test_a_write_whose_error_ended_the_transaction_fails_every_write_of_its_turn(
    tmp_path: Path,
) -> None:
    """SQLite rolls the whole transaction back on some errors (a full disk, an I/O error): the
    writes that waited for its commit must not be told it was made."""
    conn, _ = await _turn_writes(tmp_path)
    failure = sqlite3.OperationalError("disk I/O error")

    async def ending_the_transaction() -> None:
        with conn.turn_write():
            conn.run("INSERT INTO item VALUES ('lost')")
            conn.run("ROLLBACK")  # as SQLite does on such an error
            raise failure

    results = await asyncio.gather(
        _write_item(conn, "first"),
        ending_the_transaction(),
        _write_item(conn, "second"),
        return_exceptions=True,
    )
    assert results[0] is failure and results[1] is failure and results[2] is None
    assert _committed_items(tmp_path / "turns.sqlite") == ["second"]
    await conn.close()


async def test_a_commit_that_fails_reaches_every_write_of_its_turn(tmp_path: Path) -> None:
    conn, _ = await _turn_writes(tmp_path)
    driver = conn.sqlite_connection()
    # A foreign key checked at COMMIT: a row that breaks it makes the turn's commit fail.
    driver.execute("PRAGMA foreign_keys=ON")
    driver.execute(
        "CREATE TABLE child (item TEXT REFERENCES item(name) DEFERRABLE INITIALLY DEFERRED)"
    )
    driver.commit()

    async def orphan() -> None:
        with conn.turn_write():
            conn.run("INSERT INTO child VALUES ('missing')")
        await conn.commit_turn()

    results = await asyncio.gather(
        _write_item(conn, "first"), orphan(), _write_item(conn, "second"), return_exceptions=True
    )
    assert all(isinstance(result, sqlite3.IntegrityError) for result in results), results
    assert _committed_items(tmp_path / "turns.sqlite") == []
    assert not driver.in_transaction
    await _write_item(conn, "after")
    assert _committed_items(tmp_path / "turns.sqlite") == ["after"]
    await conn.close()


async def _engine_turns(
    tmp_path: Path, large_values: LargeValues | None = None
) -> tuple[InlineEngine, list[str], Path]:
    """An InlineEngine with a table `item`, the statements its connection runs from now on, and
    its file."""
    path = tmp_path / "engine-turns.sqlite"
    engine = _inline_engine(path, timeout=5, large_values=large_values)
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE item (name TEXT PRIMARY KEY)"))
    statements: list[str] = []
    (await _driver_of(engine)).set_trace_callback(statements.append)
    return engine, statements, path


async def _store_item(engine: InlineEngine, *names: str) -> None:
    async with engine.autocommit() as conn:
        for name in names:
            await conn.execute(sa.text("INSERT INTO item VALUES (:name)"), {"name": name})


async def test_autocommit_blocks_of_one_turn_share_a_commit_and_return_once_committed(
    tmp_path: Path,
) -> None:
    engine, statements, path = await _engine_turns(tmp_path)
    names = [f"run-{n}" for n in range(8)]
    await asyncio.gather(*(_store_item(engine, name) for name in names))
    assert statements.count("COMMIT") == 1
    # Each returned after its row was committed: another connection reads them all.
    assert _committed_items(path) == names
    await _store_item(engine, "later")
    assert statements.count("COMMIT") == 2
    assert "later" in _committed_items(path)
    await engine.dispose()


async def test_a_failed_autocommit_block_undoes_only_its_own_statements(tmp_path: Path) -> None:
    engine, _, path = await _engine_turns(tmp_path)
    results = await asyncio.gather(
        _store_item(engine, "first"),
        _store_item(engine, "half", "first"),  # "first" is there already: fails
        _store_item(engine, "second"),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], sa.exc.IntegrityError)
    assert _committed_items(path) == ["first", "second"]
    await engine.dispose()


async def test_a_block_whose_error_ended_the_transaction_fails_every_block_of_its_turn(
    tmp_path: Path,
) -> None:
    engine, _, path = await _engine_turns(tmp_path)
    failure = sqlite3.OperationalError("disk I/O error")

    async def ending_the_transaction() -> None:
        async with engine.autocommit() as conn:
            await conn.execute(sa.text("INSERT INTO item VALUES ('lost')"))
            await conn.execute(sa.text("ROLLBACK"))  # as SQLite does on such an error
            raise failure

    results = await asyncio.gather(
        _store_item(engine, "first"),
        ending_the_transaction(),
        _store_item(engine, "second"),
        return_exceptions=True,
    )
    assert results[0] is failure and results[1] is failure and results[2] is None
    assert _committed_items(path) == ["second"]
    await engine.dispose()


async def test_a_commit_that_fails_reaches_every_autocommit_block_of_its_turn(
    tmp_path: Path,
) -> None:
    engine, _, path = await _engine_turns(tmp_path)
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE child (item TEXT REFERENCES item(name))"))

    async def orphan() -> None:
        async with engine.autocommit() as conn:
            # Checked at COMMIT from now on: the turn's commit fails.
            await conn.execute(sa.text("PRAGMA defer_foreign_keys = ON"))
            await conn.execute(sa.text("INSERT INTO child VALUES ('missing')"))

    async with engine.connect() as conn:
        await conn.execute(sa.text("PRAGMA foreign_keys = ON"))
    results = await asyncio.gather(
        _store_item(engine, "first"),
        orphan(),
        _store_item(engine, "second"),
        return_exceptions=True,
    )
    assert all(isinstance(result, sa.exc.IntegrityError) for result in results), results
    assert _committed_items(path) == []
    await _store_item(engine, "after")
    assert _committed_items(path) == ["after"]
    await engine.dispose()


async def test_a_transaction_commits_the_waiting_autocommit_blocks_before_it_holds_the_connection(
    tmp_path: Path,
) -> None:
    """A transaction may wait, holding the connection, for what a caller does once its block is
    committed: that block's commit must not wait for the transaction."""
    engine, _, path = await _engine_turns(tmp_path)
    stored = asyncio.Event()

    async def store_then_tell() -> None:
        await _store_item(engine, "first")
        stored.set()

    async def wait_inside_a_transaction() -> None:
        async with engine.begin() as conn:
            await stored.wait()
            await conn.execute(sa.text("INSERT INTO item VALUES ('second')"))

    async with asyncio.timeout(2):
        await asyncio.gather(store_then_tell(), wait_inside_a_transaction())
    assert _committed_items(path) == ["first", "second"]
    await engine.dispose()


async def test_an_autocommit_block_that_bound_a_large_value_is_committed_before_the_reopening(
    tmp_path: Path,
) -> None:
    large_values = LargeValues()
    engine, _, path = await _engine_turns(tmp_path, large_values)
    first = await _driver_of(engine)

    async def store_large() -> None:
        async with engine.autocommit() as conn:
            await conn.execute(sa.text("INSERT INTO item VALUES ('large')"))
            large_values.note("x" * LARGE_VALUE_BYTES)

    await asyncio.gather(_store_item(engine, "small"), store_large())
    assert _committed_items(path) == ["large", "small"]
    assert await _driver_of(engine) is not first
    await engine.dispose()


async def _driver_of(engine: InlineEngine) -> sqlite3.Connection:
    async with engine.connect() as conn:
        driver = await conn.run_sync(lambda c: c.connection.driver_connection)
    assert isinstance(driver, sqlite3.Connection)
    return driver
