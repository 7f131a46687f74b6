"""A queue claim takes at most the runs it asks for, whatever plan the database picks for it:
the worker counts its free slots by what it asked, so each run taken beyond that was a slot
given back that it never held, and `N_JOBS_PER_WORKER` stopped holding. On PostgreSQL, under the
load of `bench/regressions.py`, a claim of 10 took 32 runs, and 64 runs of 0.5 s ran 20 and more
at a time on a worker of 10 slots.

The planner chose a nested loop whose inner side, the claim's `LIMIT ... FOR UPDATE SKIP LOCKED`
subquery, ran again for each pending run: each time it skipped the runs the UPDATE had just
marked and locked the next ones. The test makes that plan the planner's choice, as the load did,
by turning its alternatives off for the database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from stead.ids import new_time_ordered_id
from stead.services.assistants import now_utc
from stead.services.threads import new_thread_record
from stead.storage.database import Database
from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import database_on
from tests.support.records import assistant_record, run_record
from tests.support.services import Postgres, postgres_server

_ASSISTANT_ID = "5e2c1f3a-0000-4000-8000-000000000064"
_PENDING = 64
_LIMIT = 10


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with database_on(request, GRAPHS_CONFIG, tmp_path, "stead") as database:
        if request.param == "postgresql":
            # Before Stead's first connection (its pools open on first use): every connection
            # plans without the hash and merge joins that would read the candidates once, and
            # the nested loop left rescans them.
            uri = request.getfixturevalue("pg").url("stead")
            with psycopg.connect(uri, autocommit=True) as conn:
                conn.execute("ALTER DATABASE stead SET enable_hashjoin = off")
                conn.execute("ALTER DATABASE stead SET enable_mergejoin = off")
        yield database


async def _pending_runs(db: Database, count: int) -> list[str]:
    """`count` due pending runs, each on a thread of its own, oldest first."""
    created = now_utc() - timedelta(minutes=1)
    run_ids = []
    async with db.transaction() as tx:
        await tx.assistants.insert_unless_present(assistant_record(_ASSISTANT_ID))
        for n in range(count):
            thread_id, run_id = new_time_ordered_id(), new_time_ordered_id()
            await tx.threads.insert(new_thread_record(thread_id, {}))
            at = created + timedelta(milliseconds=n)
            await tx.runs.insert(
                run_record(run_id, thread_id, _ASSISTANT_ID, created_at=at, updated_at=at)
            )
            run_ids.append(run_id)
    return run_ids


async def test_a_claim_takes_at_most_the_runs_it_asks_for(db: Database) -> None:
    pending = await _pending_runs(db, _PENDING)
    claimed: list[str] = []
    while len(claimed) < _PENDING:
        async with db.autocommit() as tx:
            runs, _ = await tx.runs.claim_due(now_utc(), timedelta(seconds=30), _LIMIT)
        assert 0 < len(runs) <= _LIMIT, f"a claim of {_LIMIT} took {len(runs)} runs"
        claimed += [run["run_id"] for run in runs]
    # Oldest first, each once.
    assert claimed == pending
    async with db.autocommit() as tx:
        assert (await tx.runs.claim_due(now_utc(), timedelta(seconds=30), _LIMIT))[0] == []
