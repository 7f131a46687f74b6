"""A run on a thread that has finished thousands of runs reads only the thread's pending and
running ones, on SQLite and on PostgreSQL: looking for them (as a run is created, claimed and
ended, and as expired threads are swept) goes through the partial index `run_active_by_thread`,
not through every run the thread ever had (migration 0011).

The statements are the ones the storage layer really sends: on SQLite each is traced as it runs
and its plan read back; on PostgreSQL auto_explain logs the plan of each as it ran, with the rows
it read and threw away."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import psycopg
import pytest
import sqlalchemy as sa

from stead.ids import new_time_ordered_id
from stead.services.assistants import now_utc
from stead.services.threads import new_thread_record
from stead.storage.database import Database
from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import stead_migrate
from tests.support.records import assistant_record, run_record
from tests.support.services import Postgres, postgres_server

_ASSISTANT_ID = "5e2c1f3a-0000-4000-8000-000000000011"
_FINISHED_RUNS = 2_000
_REMOVED_BY_FILTER = re.compile(r"Rows Removed by Filter: (\d+)")


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server() as server:
        conf = server.data_dir / "postgresql.conf"
        conf.write_text(
            conf.read_text()
            + "\nsession_preload_libraries = 'auto_explain'\n"
            + "auto_explain.log_min_duration = 0\nauto_explain.log_analyze = on\n"
            + "auto_explain.log_nested_statements = on\n"
        )
        server.stop()
        server.start()
        yield server


class _Plans(Protocol):
    def start(self) -> None: ...

    def wasteful(self) -> list[str]:
        """The plans, since `start`, that read the thread's finished runs."""
        ...


@dataclass
class _Backend:
    """A migrated database of one backend and the plans of the statements sent to it."""

    db: Database
    plans: _Plans


class _SqlitePlans:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._statements: list[str] = []
        self._tracing = False

    def trace(self, dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_trace_callback(self._traced)

    def _traced(self, sql: str) -> None:
        if self._tracing:
            self._statements.append(sql)

    def start(self) -> None:
        self._tracing = True

    def wasteful(self) -> list[str]:
        assert any(" run" in sql for sql in self._statements), "no statement on run was traced"
        with sa.create_engine(f"sqlite:///{self._path}").connect() as conn:
            found = []
            for sql in self._statements:
                if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
                    continue
                plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
                if any(_reads_every_run(line) for line in plan):
                    found.append(f"{sql}\n  {plan}")
            return found


def _reads_every_run(plan_line: str) -> bool:
    return "run_thread_by_age" in plan_line or re.match(r"SCAN run\b", plan_line) is not None


class _PostgresPlans:
    def __init__(self, log: Path, uri: str) -> None:
        self._log = log
        self._uri = uri
        self._start = 0

    def analyze(self) -> None:
        """Statistics of the seeded runs, as autovacuum would gather them in time."""
        with psycopg.connect(self._uri, autocommit=True) as conn:
            conn.execute("ANALYZE run")

    def start(self) -> None:
        self._start = self._log.stat().st_size

    def wasteful(self) -> list[str]:
        with self._log.open(errors="replace") as log:
            log.seek(self._start)
            logged = log.read()
        assert "Query Text:" in logged, "auto_explain logged nothing"
        return [
            plan
            for plan in logged.split("LOG:  duration:")
            if any(int(n) >= _FINISHED_RUNS // 2 for n in _REMOVED_BY_FILTER.findall(plan))
        ]


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[_Backend]:
    plans: _Plans
    if request.param == "sqlite":
        path = tmp_path / "stead.sqlite"
        plans = _SqlitePlans(path)
        sa.event.listen(sa.Engine, "connect", plans.trace)
        db = Database(f"sqlite:///{path}")
        await db.migrate()
    else:
        server: Postgres = request.getfixturevalue("pg")
        uri = server.url()
        result = stead_migrate(GRAPHS_CONFIG, uri)
        assert result.returncode == 0, result.stderr
        plans = _PostgresPlans(server.data_dir.parent / "pg.log", uri)
        db = Database("postgresql+psycopg://" + uri.split("://", 1)[1])
    try:
        yield _Backend(db, plans)
    finally:
        await db.close()
        if isinstance(plans, _SqlitePlans):
            sa.event.remove(sa.Engine, "connect", plans.trace)


def _run_record(thread_id: str, status: str, created_offset: float) -> dict[str, Any]:
    created = now_utc() - timedelta(hours=1) + timedelta(seconds=created_offset)
    return run_record(
        new_time_ordered_id(),
        thread_id,
        _ASSISTANT_ID,
        status=status,
        kwargs={"input": {"text": "a turn of a long conversation " * 10}},
        attempt=1 if status != "pending" else 0,
        created_at=created,
        updated_at=created,
    )


async def _thread_with_finished_runs(backend: _Backend) -> str:
    thread_id = new_time_ordered_id()
    async with backend.db.transaction() as tx:
        await tx.assistants.insert_unless_present(assistant_record(_ASSISTANT_ID))
        await tx.threads.insert({**new_thread_record(thread_id, {}), "expires_at": now_utc()})
        for n in range(_FINISHED_RUNS):
            await tx.runs.insert(_run_record(thread_id, "success", n))
    if isinstance(backend.plans, _PostgresPlans):
        backend.plans.analyze()
    return thread_id


async def test_a_run_on_a_long_thread_does_not_read_its_finished_runs(backend: _Backend) -> None:
    thread_id = await _thread_with_finished_runs(backend)
    backend.plans.start()
    db, now = backend.db, now_utc()
    async with db.transaction() as tx:
        assert await tx.runs.active_for_thread(thread_id) == []
        assert not await tx.runs.has_active(thread_id)
        pending = _run_record(thread_id, "pending", _FINISHED_RUNS)
        await tx.runs.insert(pending)
        queued = _run_record(thread_id, "pending", _FINISHED_RUNS + 1)
        await tx.runs.insert(queued)
    async with db.transaction() as tx:
        claimed, _ = await tx.runs.claim_due(now, timedelta(seconds=30), 10)
    assert [run["run_id"] for run in claimed] == [pending["run_id"]]
    async with db.transaction() as tx:
        active = await tx.runs.active_for_thread(thread_id)
        assert [run["run_id"] for run in active] == [pending["run_id"], queued["run_id"]]
        assert await tx.runs.finish_attempt(pending["run_id"], 1, "success", now)
        assert await tx.threads.settle(thread_id, pending["run_id"], "idle")
        assert await tx.threads.expired(now_utc(), 10) == []
    wasteful = backend.plans.wasteful()
    assert not wasteful, "\n---\n".join(wasteful[:5])
