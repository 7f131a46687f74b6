"""The engine, its transactions and its migrations."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url

from stead import serde
from stead.storage import sqlite_inline
from stead.storage.access import UNRESTRICTED, Access
from stead.storage.api_keys import ApiKeyRepository
from stead.storage.assistants import AssistantRepository
from stead.storage.connections import Connection, Engine
from stead.storage.crons import CronRepository
from stead.storage.dialects import Dialect, dialect_for
from stead.storage.runs import RunRepository
from stead.storage.schema import assistant, cron, metadata, run, thread
from stead.storage.sqlite_wal import use_wal
from stead.storage.threads import ThreadRepository

# The newest schema revision (stead.storage.revisions lists them all). A database already there
# is not handed to Alembic, so that a server starting on it never loads Alembic (9 MiB).
SCHEMA_HEAD = "0013"
_VERSION_TABLE = "alembic_version"

# PostgreSQL's autocommit blocks run their prepared statements on a pool of psycopg's own.
_STATEMENT_POOL_SIZE = 10

_SQLALCHEMY_UNAVAILABLE: tuple[type[Exception], ...] = (sa.exc.DBAPIError, sa.exc.TimeoutError)


def database_errors() -> tuple[type[Exception], ...]:
    """What the drivers raise while the database is down, restarting or out of connections; of
    DBAPIError, only connection failures count (see is_database_unavailable).

    psycopg's own (LangGraph's PostgreSQL savers use it directly; its pool's timeout is one of
    them) count once psycopg is loaded: an error of a driver never imported cannot be raised,
    and the embedded default never imports it (9 MiB).
    """
    psycopg = sys.modules.get("psycopg")
    if psycopg is None:
        return _SQLALCHEMY_UNAVAILABLE
    return (*_SQLALCHEMY_UNAVAILABLE, psycopg.OperationalError)


def driver_errors() -> tuple[type[Exception], ...]:
    """Every error of the database drivers in use: a failure of the storage, not of a graph."""
    psycopg = sys.modules.get("psycopg")
    errors = (sqlite3.Error, sa.exc.SQLAlchemyError)
    return errors if psycopg is None else (*errors, psycopg.Error)


DATABASE_UNAVAILABLE_DETAIL = "Database unavailable; retry shortly"


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means the database could not be reached, so a retry may succeed."""
    if isinstance(exc, sa.exc.DBAPIError):
        return exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError)
    return isinstance(exc, database_errors())


# How long opening a PostgreSQL connection may take before the database counts as unreachable.
CONNECT_TIMEOUT_SECONDS = 5


class Transaction:
    """One database transaction, with a repository per resource bound to it; their reads and
    writes keep to what `access` lets the request see."""

    def __init__(self, conn: Connection, dialect: Dialect, access: Access) -> None:
        self.connection = conn
        self.assistants = AssistantRepository(conn, dialect, access.assistants)
        self.threads = ThreadRepository(conn, dialect, access.threads)
        self.runs = RunRepository(conn, dialect, access.threads)
        self.crons = CronRepository(conn, dialect, access.crons)
        self.api_keys = ApiKeyRepository(conn)


class Database:
    def __init__(self, url: str) -> None:
        self.engine, self._pool_capacity = create_engine(url)
        self.dialect = dialect_for(self.engine.dialect.name)

    @contextlib.asynccontextmanager
    async def transaction(self, access: Access = UNRESTRICTED) -> AsyncIterator[Transaction]:
        async with self.engine.begin() as conn:
            yield Transaction(conn, self.dialect, access)

    @contextlib.asynccontextmanager
    async def autocommit(self, access: Access = UNRESTRICTED) -> AsyncIterator[Transaction]:
        """For statements that stand alone: reads that lock nothing, or a single write. Each
        commits as it ends, as in a transaction at PostgreSQL's READ COMMITTED, without the round
        trips of BEGIN and COMMIT. On SQLite the block is one savepoint, committed with the other
        blocks of its turn of the event loop (stead.storage.sqlite_inline.InlineEngine)."""
        async with self.engine.autocommit() as conn:
            yield Transaction(conn, self.dialect, access)

    async def migrate(self) -> None:
        revision = await self.schema_revision()
        if revision == SCHEMA_HEAD:
            return
        if revision is None and self.engine.dialect.name == "sqlite":
            # As the migrations would make it, without loading Alembic for good (9 MiB).
            async with self.engine.begin() as conn:
                await conn.run_sync(_create_at_head)
            return
        from stead.storage.revisions import upgrade_to_head

        async with self.engine.begin() as conn:
            await conn.run_sync(upgrade_to_head)

    async def is_current(self) -> bool:
        return await self.schema_revision() == SCHEMA_HEAD

    async def schema_revision(self) -> str | None:
        """The Alembic revision Stead's tables are at; None before the first migration."""
        async with self.engine.connect() as conn:
            return await conn.run_sync(_schema_revision)

    async def holds_data(self) -> bool:
        """Whether anything a user made is stored: threads, runs, crons, or assistants other
        than the graphs' own."""
        if await self.schema_revision() is None:
            return False
        async with self.engine.connect() as conn:
            for table in (thread, run, cron):
                if (await conn.execute(sa.select(table).limit(1))).first() is not None:
                    return True
            metadata = (await conn.execute(sa.select(assistant.c.metadata))).scalars()
            return any((found or {}).get("created_by") != "system" for found in metadata)

    async def ping(self) -> None:
        """Raises when the database does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    def pool_usage(self) -> tuple[int, int]:
        """Connections checked out, and how many the pools may hold."""
        return self.engine.connections_in_use(), self._pool_capacity

    async def close(self) -> None:
        await self.engine.dispose()


def create_engine(url: str) -> tuple[Engine, int]:
    """An engine tuned for its backend, and how many connections its pool may hold."""
    options = _engine_options(url)
    capacity = int(options["pool_size"] + options["max_overflow"])
    if url.startswith("sqlite"):
        return _inline_sqlite_engine(url, options), capacity
    return _async_engine(url, options), capacity + _STATEMENT_POOL_SIZE


def _async_engine(url: str, options: dict[str, Any]) -> Engine:
    """SQLAlchemy's asyncio engine and psycopg, imported here: with the ORM they bring, 7 MiB
    resident that the embedded default does without."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from stead.storage.connection_checks import check_engine_connections
    from stead.storage.postgres_engine import PostgresEngine, read_json_in_place, statement_pool

    engine = create_async_engine(url, **options)
    check_engine_connections(engine)
    read_json_in_place(engine)
    statements = partial(statement_pool, engine, _STATEMENT_POOL_SIZE, options["connect_args"])
    return PostgresEngine(engine, statements)


def _inline_sqlite_engine(url: str, options: dict[str, Any]) -> sqlite_inline.InlineEngine:
    """The file's one connection, its statements run on the event loop's thread (see
    stead.storage.sqlite_inline); the URL only names the file."""
    database = make_url(url).database or ":memory:"
    options["creator"] = partial(sqlite3.connect, database, check_same_thread=False)
    large_values = sqlite_inline.LargeValues()
    options["json_serializer"] = partial(_json_text, large_values)
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.QueuePool, **options)
    event.listen(engine, "connect", _sqlite_pragmas)
    return sqlite_inline.InlineEngine(engine, options["pool_timeout"], large_values)


def _engine_options(url: str) -> dict[str, Any]:
    # orjson, as they were written: several times faster than the standard library's. psycopg
    # takes the encoded bytes as they are; SQLite needs text (its JSON functions read a BLOB as
    # binary JSONB), so there alone they are decoded, a copy of every value (`_json_text`, set
    # with the inline engine).
    options: dict[str, Any] = {"json_deserializer": serde.loads}
    if url.startswith("sqlite"):
        # One connection serialises writers in-process instead of failing with "database is locked".
        options.update(pool_size=1, max_overflow=0, pool_timeout=60, pool_reset_on_return=None)
    else:
        # A real pool, its connections checked (stead.storage.connection_checks). Short timeouts
        # make requests fail fast (503) while the database is unreachable instead of hanging.
        # With the autocommit statements' pool, a process holds up to 30 connections. None are
        # overflow: SQLAlchemy closes those as they come back, and at 16 clients that meant a new
        # connection every 14 runs.
        options.update(
            json_serializer=serde.dumps,
            pool_size=20,
            max_overflow=0,
            pool_timeout=10,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        )
    return options


def _json_text(large_values: sqlite_inline.LargeValues, value: Any) -> str:
    text = serde.dumps(value).decode()
    large_values.note(text)
    return text


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    use_wal(dbapi_conn)
    dbapi_conn.execute("PRAGMA foreign_keys=ON")
    dbapi_conn.execute("PRAGMA busy_timeout=10000")


# Alembic's own table, as it makes it, for a database made without it.
_schema_version = sa.Table(
    _VERSION_TABLE, sa.MetaData(), sa.Column("version_num", sa.String(32), primary_key=True)
)


def _create_at_head(conn: sa.Connection) -> None:
    metadata.create_all(conn)
    _schema_version.create(conn)
    conn.execute(_schema_version.insert().values(version_num=SCHEMA_HEAD))


def _schema_revision(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table(_VERSION_TABLE):
        return None
    return conn.execute(sa.text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalar()
