"""The statements a run sends run past SQLAlchemy's execution layer (stead.storage.prepared): on
SQLite and on PostgreSQL they must read and write the same values, fail with the same errors
and keep to the same transactions as the statements SQLAlchemy runs. Starts its own PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from stead.ids import new_time_ordered_id
from stead.services.threads import new_thread_record
from stead.storage import prepared
from stead.storage.database import Database, is_database_unavailable
from stead.storage.schema import run, thread
from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import stead_migrate
from tests.support.services import Postgres, postgres_server

_DATABASES = ("types", "errors", "rollback", "severed", "autocommit", "pools")


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server(databases=_DATABASES) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of each backend, one per test."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'stead.sqlite'}"
        return
    pg: Postgres = request.getfixturevalue("pg")
    yield _migrated_postgres(pg, _DATABASE_OF_TEST[request.node.originalname])


_DATABASE_OF_TEST = {
    "test_prepared_statements_read_what_sqlalchemy_wrote_and_the_reverse": "types",
    "test_a_failing_prepared_statement_raises_as_sqlalchemy_does": "errors",
    "test_prepared_writes_belong_to_the_transaction_around_them": "rollback",
    "test_an_autocommit_block_reads_what_a_transaction_wrote": "autocommit",
}


def _migrated_postgres(pg: Postgres, database: str) -> str:
    uri = pg.url(database)
    result = stead_migrate(GRAPHS_CONFIG, uri)
    assert result.returncode == 0, result.stderr
    # Every test starts from empty tables; the database is shared by both runs of a test.
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute("TRUNCATE run, thread CASCADE")
    return pg.sqlalchemy_url(database)


def _with_database(url: str, scenario: Callable[[Database], Awaitable[Any]]) -> Any:
    async def run_it() -> Any:
        db = Database(url)
        try:
            await db.migrate()
            return await scenario(db)
        finally:
            await db.close()

    return asyncio.run(run_it())


def _thread(**fields: Any) -> dict[str, Any]:
    record = new_thread_record(new_time_ordered_id(), {"owner": "ana", "tags": ["a", "b"]})
    return {**record, **fields}


def test_prepared_statements_read_what_sqlalchemy_wrote_and_the_reverse(database_url: str) -> None:
    """JSON, timestamps, NULLs and numbers come back as they went in, whichever path wrote the
    row and whichever read it."""
    written = _thread(
        values={"text": "héllo", "n": 3, "nested": [1, {"x": None}]},
        ttl_minutes=1.5,
        expires_at=datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    )
    by_sqlalchemy = _thread(values=None, ttl_minutes=None)

    async def scenario(db: Database) -> tuple[Any, ...]:
        async with db.transaction() as tx:
            await tx.threads.insert(written)  # prepared
            await tx.connection.execute(sa.insert(thread).values(**by_sqlalchemy))
        async with db.transaction() as tx:
            read_prepared = await tx.threads.get(by_sqlalchemy["thread_id"])  # prepared
            read_by_sqlalchemy = (
                (
                    await tx.connection.execute(
                        sa.select(thread).where(thread.c.thread_id == written["thread_id"])
                    )
                )
                .mappings()
                .one()
            )
        return read_prepared, dict(read_by_sqlalchemy)

    read_prepared, read_by_sqlalchemy = _with_database(database_url, scenario)
    assert read_by_sqlalchemy == written
    assert read_prepared == by_sqlalchemy
    assert read_by_sqlalchemy["expires_at"].tzinfo is not None
    assert read_by_sqlalchemy["ttl_minutes"] == 1.5


def test_a_failing_prepared_statement_raises_as_sqlalchemy_does(database_url: str) -> None:
    """A duplicate key is SQLAlchemy's IntegrityError, with the statement; nothing of the
    transaction it broke is kept."""
    first = _thread()
    other = _thread()

    async def scenario(db: Database) -> tuple[BaseException, list[str]]:
        async with db.transaction() as tx:
            await tx.threads.insert(first)
        with pytest.raises(sa.exc.DBAPIError) as raised:
            async with db.transaction() as tx:
                await tx.threads.insert(other)
                await tx.threads.insert(first)
        async with db.transaction() as tx:
            kept = (await tx.connection.execute(sa.select(thread.c.thread_id))).scalars().all()
        return raised.value, list(kept)

    error, kept = _with_database(database_url, scenario)
    assert isinstance(error, sa.exc.IntegrityError)
    assert "INSERT INTO thread" in str(error)
    assert kept == [first["thread_id"]]


def test_prepared_writes_belong_to_the_transaction_around_them(database_url: str) -> None:
    """A transaction that fails after a prepared write takes the write back; one that succeeds
    commits it with the statements SQLAlchemy ran in it."""
    dropped, kept = _thread(), _thread()

    async def scenario(db: Database) -> list[str]:
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.threads.insert(dropped)
                raise RuntimeError("the request failed after its write")
        async with db.transaction() as tx:
            await tx.threads.insert(kept)
            await tx.connection.execute(
                sa.update(thread)
                .where(thread.c.thread_id == kept["thread_id"])
                .values(status="busy")
            )
        async with db.autocommit() as tx:
            rows = await tx.connection.execute(sa.select(thread.c.thread_id, thread.c.status))
            return [f"{found.thread_id} {found.status}" for found in rows]

    assert _with_database(database_url, scenario) == [f"{kept['thread_id']} busy"]


def test_an_autocommit_block_reads_what_a_transaction_wrote(database_url: str) -> None:
    """On PostgreSQL an autocommit block's prepared statements run on psycopg's own pool: its
    connections must decode JSON, timestamps and numbers as SQLAlchemy's do."""
    written = _thread(
        values={"text": "héllo", "n": 3, "nested": [1, {"x": None}], "big": 2**53 + 1},
        ttl_minutes=1.5,
        expires_at=datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    )

    async def scenario(db: Database) -> list[Any]:
        async with db.transaction() as tx:
            await tx.threads.insert(written)
        async with db.autocommit() as tx:
            first = await tx.threads.get(written["thread_id"])  # prepared
            page = await tx.threads.search(  # prepared: no filter
                ids=None,
                metadata=None,
                values=None,
                status=None,
                limit=10,
                offset=0,
                sort_by="created_at",
                sort_order="desc",
            )
        return [first, *page.rows]

    assert _with_database(database_url, scenario) == [written, written]


def test_autocommit_blocks_beyond_psycopgs_pool_go_through_sqlalchemys(pg: Postgres) -> None:
    """More autocommit blocks at once than psycopg's pool has connections ready: the others run
    their statements through SQLAlchemy's pool at once, every block reads the row, each
    connection is counted in use while held and returned at the block's end, also after the
    engine was disposed."""
    url = _migrated_postgres(pg, "pools")
    blocks = 15

    async def read_while_held(db: Database, thread_id: str, release: asyncio.Event) -> Any:
        async with db.autocommit() as tx:
            found = await tx.threads.get(thread_id)
            await release.wait()
            return found

    async def scenario(db: Database) -> tuple[list[Any], int, int, Any]:
        record = _thread()
        async with db.transaction() as tx:
            await tx.threads.insert(record)
        release = asyncio.Event()
        held = [
            asyncio.create_task(read_while_held(db, record["thread_id"], release))
            for _ in range(blocks)
        ]
        # None waits for psycopg's pool to free a connection (it would for its timeout, 30 s).
        deadline = asyncio.get_running_loop().time() + 5
        while db.pool_usage()[0] < blocks and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        in_use_while_held = db.pool_usage()[0]
        release.set()
        found = await asyncio.gather(*held)
        in_use_after = db.pool_usage()[0]
        await db.close()
        async with db.autocommit() as tx:
            after_dispose = await tx.threads.get(record["thread_id"])
        return [*found, after_dispose], in_use_while_held, in_use_after, record

    found, in_use_while_held, in_use_after, record = _with_database(url, scenario)
    assert found == [record] * (blocks + 1)
    assert in_use_while_held == blocks
    assert in_use_after == 0


def test_a_prepared_statement_on_a_severed_connection_invalidates_it(pg: Postgres) -> None:
    """The database dropped the connection (a restart, a proxy's timeout): the statement fails as
    a lost connection, which requests answer with 503, and the pool replaces the connection
    instead of handing it out again."""
    url = _migrated_postgres(pg, "severed")

    async def scenario(db: Database) -> tuple[BaseException, dict[str, Any] | None]:
        record = _thread()
        async with db.transaction() as tx:
            await tx.threads.insert(record)
        with pytest.raises(sa.exc.DBAPIError) as raised:
            async with db.transaction() as tx:
                pid = (await tx.connection.execute(sa.select(sa.func.pg_backend_pid()))).scalar()
                with psycopg.connect(pg.url("severed"), autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                await tx.threads.get(record["thread_id"])
        async with db.transaction() as tx:
            return raised.value, await tx.threads.get(record["thread_id"])

    error, found = _with_database(url, scenario)
    assert is_database_unavailable(error)
    assert found is not None


def test_a_statement_that_runs_expanded_cannot_be_prepared(tmp_path: Path) -> None:
    """An IN list is rendered as it runs, which a statement compiled once cannot be: marking one
    fails at its first run, loudly, instead of running it wrong."""
    statement = prepared.prepared(sa.select(run).where(run.c.status.in_(("pending", "running"))))

    async def scenario(db: Database) -> None:
        async with db.transaction() as tx:
            await tx.connection.execute(statement)

    with pytest.raises(prepared.PreparationError):
        _with_database(f"sqlite+aiosqlite:///{tmp_path / 'stead.sqlite'}", scenario)


def test_an_insert_is_compiled_for_the_columns_it_is_given(tmp_path: Path) -> None:
    """As SQLAlchemy does, an INSERT without values takes its columns from the parameters: two
    records with different columns each get their own statement."""
    full = _thread(expires_at=datetime.now(UTC) + timedelta(days=1))
    partial = {key: value for key, value in _thread().items() if key != "expires_at"}

    async def scenario(db: Database) -> list[Any]:
        async with db.transaction() as tx:
            await tx.threads.insert(full)
            await tx.threads.insert(partial)
        async with db.transaction() as tx:
            return [await tx.threads.get(record["thread_id"]) for record in (full, partial)]

    read_full, read_partial = _with_database(
        f"sqlite+aiosqlite:///{tmp_path / 'stead.sqlite'}", scenario
    )
    assert read_full == full
    assert read_partial == {**partial, "expires_at": None}
