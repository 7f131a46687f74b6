"""Runs built from a cached assistant, on SQLite and on PostgreSQL.

An API process keeps the assistants its runs were built from (AssistantCache); a run built from
a kept copy is stored only if the assistant is still as copied, checked by the run's INSERT
(`RunRepository.insert`, and `insert_with_thread` for a stateless run
and its thread): nothing is written otherwise. Across API replicas: test_topology.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from stead.ids import new_time_ordered_id
from stead.services.assistants import AssistantCache, now_utc
from stead.services.threads import new_thread_record
from stead.storage.access import UNRESTRICTED, Access
from stead.storage.database import Database
from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import database_on
from tests.support.records import assistant_record, run_record
from tests.support.services import Postgres, postgres_server

_ASSISTANT_ID = "5e2c1f3a-0000-4000-8000-000000000012"


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server(databases=("cached",)) as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with database_on(request, GRAPHS_CONFIG, tmp_path, "cached") as database:
        async with database.transaction() as tx:
            if await tx.assistants.get(_ASSISTANT_ID) is None:
                await tx.assistants.insert(assistant_record(_ASSISTANT_ID))
        yield database


async def _current(db: Database) -> dict[str, Any]:
    async with db.autocommit() as conn:
        found = await conn.assistants.get(_ASSISTANT_ID)
    assert found is not None
    return found


async def _changed(db: Database, record: dict[str, Any]) -> dict[str, Any]:
    """`record` saved as the assistant's next version, as a PATCH does."""
    changed = {**record, "version": record["version"] + 1, "updated_at": now_utc()}
    async with db.transaction() as tx:
        await tx.assistants.save_version(changed)
    return await _current(db)


def _new_run(thread_id: str) -> dict[str, Any]:
    return run_record(new_time_ordered_id(), thread_id, _ASSISTANT_ID, kwargs={"temporary": True})


async def _stored(db: Database, thread_id: str, run_id: str) -> tuple[bool, bool]:
    async with db.autocommit() as conn:
        return (
            await conn.threads.get(thread_id) is not None,
            await conn.runs.get(run_id) is not None,
        )


async def test_a_stateless_run_and_its_thread_are_stored_only_if_the_assistant_is_unchanged(
    db: Database,
) -> None:
    copied = await _current(db)
    await _changed(db, copied)
    thread = new_thread_record(new_time_ordered_id(), {})
    run = _new_run(thread["thread_id"])
    async with db.autocommit() as conn:
        assert await conn.runs.insert_with_thread(thread, run, copied) is False
    assert await _stored(db, thread["thread_id"], run["run_id"]) == (False, False)
    current = await _current(db)
    async with db.autocommit() as conn:
        assert await conn.runs.insert_with_thread(thread, run, current) is True
    assert await _stored(db, thread["thread_id"], run["run_id"]) == (True, True)


async def test_a_run_on_a_thread_is_stored_only_if_the_assistant_is_unchanged(
    db: Database,
) -> None:
    thread = new_thread_record(new_time_ordered_id(), {})
    async with db.transaction() as tx:
        await tx.threads.insert(thread)
    copied = await _current(db)
    run = _new_run(thread["thread_id"])
    async with db.transaction() as tx:
        assert await tx.runs.insert(run, copied) is True
    stale = {**copied, "updated_at": now_utc()}
    later = _new_run(thread["thread_id"])
    async with db.transaction() as tx:
        assert await tx.runs.insert(later, stale) is False
    assert await _stored(db, thread["thread_id"], later["run_id"]) == (True, False)
    async with db.transaction() as tx:
        assert await tx.assistants.delete(_ASSISTANT_ID)
    async with db.transaction() as tx:
        assert await tx.runs.insert(later, copied) is False


def test_the_cache_gives_copies_and_nothing_to_a_caller_whose_assistants_are_filtered() -> None:
    cache = AssistantCache(capacity=2)
    record = assistant_record(_ASSISTANT_ID, config={"configurable": {"suffix": "?"}})
    cache.remember(record)
    copy = cache.get(_ASSISTANT_ID, UNRESTRICTED)
    assert copy == record
    assert copy is not None
    copy["config"]["configurable"]["suffix"] = "changed by a caller"
    assert cache.get(_ASSISTANT_ID, UNRESTRICTED) == record
    assert cache.get(_ASSISTANT_ID, Access(assistants={"owner": "a"})) is None
    for other in ("5e2c1f3a-0000-4000-8000-000000000013", "5e2c1f3a-0000-4000-8000-000000000014"):
        cache.remember(assistant_record(other))
    assert cache.get(_ASSISTANT_ID, UNRESTRICTED) is None
    cache.forget("5e2c1f3a-0000-4000-8000-000000000014")
    assert cache.get("5e2c1f3a-0000-4000-8000-000000000014", UNRESTRICTED) is None
    assert cache.get("5e2c1f3a-0000-4000-8000-000000000013", UNRESTRICTED) is not None
