"""Stead on PostgreSQL for tests: `stead migrate` against a database, and the session's choice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from stead.storage.database import Database
from tests.support.servers import stead_env
from tests.support.services import Postgres, postgres_server, redis_server

# `STEAD_TEST_DATABASE=postgres` runs the session server of the suite on PostgreSQL.
TEST_DATABASE_VARIABLE = "STEAD_TEST_DATABASE"


def session_uses_postgres() -> bool:
    return os.environ.get(TEST_DATABASE_VARIABLE, "sqlite") == "postgres"


def stead_migrate(
    config: Path, database_uri: str, source: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `stead migrate` (of the checkout whose `src` is `source`, default this one) to the
    end; the caller checks its exit status and output."""
    return subprocess.run(
        [sys.executable, "-m", "stead", "migrate", "--config", str(config)],
        env=migrate_env(database_uri, source),
        capture_output=True,
        text=True,
        timeout=120,
    )


def migrate_env(database_uri: str, source: Path | None = None) -> dict[str, str]:
    return stead_env({"DATABASE_URI": database_uri}, source)


@contextmanager
def migrated_postgres(
    config: Path, max_connections: int = 100, source: Path | None = None
) -> Iterator[str]:
    """A fresh PostgreSQL with Stead's schema applied; yields its URI."""
    with postgres_server(max_connections=max_connections) as pg:
        uri = pg.url()
        result = stead_migrate(config, uri, source)
        if result.returncode != 0:
            raise RuntimeError(f"stead migrate failed: {result.stderr[-2000:]}")
        yield uri


def session_runtime_env(stack: ExitStack, config: Path) -> dict[str, str]:
    """The environment that puts a server on the session's runtime: nothing for the embedded
    default; with STEAD_TEST_DATABASE=postgres, a fresh migrated PostgreSQL and a Redis, which
    `stack` stops."""
    if not session_uses_postgres():
        return {}
    return {
        "DATABASE_URI": stack.enter_context(migrated_postgres(config)),
        "REDIS_URI": stack.enter_context(redis_server()).url,
    }


def migrated_uri(config: Path, pg: Postgres, name: str) -> str:
    """The URI of the database `name` of `pg`, once `stead migrate` has set it up."""
    uri = pg.url(name)
    result = stead_migrate(config, uri)
    assert result.returncode == 0, result.stderr
    return uri


def stead_database(uri: str) -> Database:
    """Stead's storage on the PostgreSQL at `uri`, through SQLAlchemy's psycopg driver."""
    return Database("postgresql+psycopg://" + uri.split("://", 1)[1])


def migrated_database(config: Path, pg: Postgres, name: str) -> Database:
    """Stead's storage on the database `name` of `pg`, migrated by `stead migrate`."""
    return stead_database(migrated_uri(config, pg, name))


@asynccontextmanager
async def database_on(
    request: pytest.FixtureRequest, config: Path, data_dir: Path, name: str
) -> AsyncIterator[Database]:
    """A migrated Stead database for a test of both backends, closed after it: on the backend
    `request.param` names, "sqlite" (a file in `data_dir`) or "postgresql" (the database `name`
    of the module's `pg` fixture)."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{data_dir / 'stead.sqlite'}")
        await database.migrate()
    else:
        database = migrated_database(config, request.getfixturevalue("pg"), name)
    try:
        yield database
    finally:
        await database.close()
