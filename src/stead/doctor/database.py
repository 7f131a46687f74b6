"""The database: it answers, the credentials work, the schema is current, PostgreSQL's
max_connections suits Stead's pools, the role may create temporary tables, and the database's
clock agrees with this host's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from stead.config import Settings
from stead.doctor.findings import Finding, failed, ok, warning
from stead.storage.database import Database
from stead.storage.postgres_savers import SAVERS_POOL_SIZE
from stead.storage.revisions import known_revisions

_MAY_CREATE_TEMPORARY_TABLES = "SELECT has_database_privilege(current_database(), 'TEMPORARY')"
_SKEW_WARNING_SECONDS = 1.0
_SKEW_FAILURE_SECONDS = 10.0


async def check_database(settings: Settings) -> list[Finding]:
    if settings.postgres_uri is None:
        return [ok("database", f"embedded SQLite in {settings.data_dir}"), *await _schema(settings)]
    try:
        with psycopg.connect(settings.postgres_uri, connect_timeout=5) as conn:
            max_connections = int(_scalar(conn, "SHOW max_connections"))
            database_now: datetime = _scalar(conn, "SELECT now()")
            version = str(_scalar(conn, "SHOW server_version"))
            temporary = bool(_scalar(conn, _MAY_CREATE_TEMPORARY_TABLES))
            database, role = conn.info.dbname, conn.info.user
    except psycopg.OperationalError as exc:
        return [_unreachable(str(exc).strip().splitlines()[-1])]
    return [
        ok("database", f"PostgreSQL {version} answers and takes the credentials"),
        *await _schema(settings),
        await _pool_fit(settings, max_connections),
        _temporary_tables(temporary, database, role),
        _clock_skew(database_now),
    ]


def _scalar(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _unreachable(reason: str) -> Finding:
    if "password authentication failed" in reason or "authentication failed" in reason:
        return failed(
            "database",
            f"the credentials are refused: {reason}",
            "correct the user and password in DATABASE_URI",
        )
    return failed(
        "database",
        f"cannot connect: {reason}",
        "check that PostgreSQL runs and that DATABASE_URI names its host, port and database",
    )


async def _schema(settings: Settings) -> list[Finding]:
    if settings.postgres_uri is None and not settings.database_path.exists():
        return [ok("schema", "no database yet: `stead run` creates and migrates it")]
    db = Database(settings.database_url)
    try:
        current = await db.schema_revision()
    finally:
        await db.close()
    known = known_revisions()
    embedded = settings.postgres_uri is None
    if current == known[-1]:
        return [ok("schema", f"at {current}, this Stead's")]
    if current is not None and current not in known:
        return [
            failed(
                "schema",
                f"at {current}, newer than this Stead's {known[-1]}",
                "run the Stead version that migrated it, or a newer one",
            )
        ]
    if embedded:
        return [ok("schema", f"at {current or 'nothing yet'}; `stead run` migrates it on start")]
    return [
        failed(
            "schema",
            f"at {current or 'nothing (never migrated)'}, this Stead needs "
            f"{known[-1]}: migrations are pending",
            "run `stead migrate`",
        )
    ]


async def _pool_fit(settings: Settings, max_connections: int) -> Finding:
    db = Database(settings.database_url)
    per_process = db.pool_usage()[1] + SAVERS_POOL_SIZE
    await db.close()
    fits = max_connections // per_process
    message = (
        f"max_connections is {max_connections}: {fits} Stead process(es) at their full pools "
        f"({per_process} connections each)"
    )
    if fits < 1:
        return failed("connections", message, f"raise max_connections to at least {per_process}")
    if fits < 2:
        return warning(
            "connections",
            message,
            f"raise max_connections to {per_process} per process you run "
            "(API replicas and workers), plus your own tools",
        )
    return ok("connections", message)


def _temporary_tables(allowed: bool, database: str, role: str) -> Finding:
    """A run's checkpoint writes of 1 MiB or more go through a temporary table
    (stead.storage.postgres_large_writes)."""
    if allowed:
        return ok("temporary", "the role may create temporary tables (large checkpoint writes)")
    return failed(
        "temporary",
        "the role may not create temporary tables: runs whose checkpoints hold 1 MiB or more fail",
        f'run `GRANT TEMPORARY ON DATABASE "{database}" TO "{role}"`',
    )


def _clock_skew(database_now: datetime) -> Finding:
    skew = abs((datetime.now(UTC) - database_now).total_seconds())
    message = f"this host's clock and the database's differ by {skew:.2f} s"
    fix = "synchronise the clocks (NTP); leases and schedules compare them"
    if skew > _SKEW_FAILURE_SECONDS:
        return failed("clock", message, fix)
    if skew > _SKEW_WARNING_SECONDS:
        return warning("clock", message, fix)
    return ok("clock", message)
