"""Authorization filters as SQL: `$eq`, `$contains`, `$or` and `$and` on thread metadata, run by
the real dialect of the session (a SQLite file, or PostgreSQL's JSONB), and refused when a
handler returns one the server cannot apply."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from stead.services.threads import new_thread_record
from stead.storage import Database
from stead.storage.access import UNRESTRICTED, Access, InvalidFilter
from tests.support.postgres import session_uses_postgres
from tests.support.services import postgres_server

THREADS = {
    "a": {"owner": "alice", "team": "red", "members": ["alice", "carol"], "level": 3},
    "b": {"owner": "bob", "team": "red", "members": ["bob"], "level": 1},
    "c": {"owner": "carol", "team": "blue", "members": ["carol", "alice"], "level": 3},
    "d": {"owner": "dave", "members": [], "nested": {"org": "acme"}},
}


@pytest.fixture(scope="module")
async def database(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Database]:
    async with contextlib.AsyncExitStack() as stack:
        if session_uses_postgres():
            pg = stack.enter_context(postgres_server())
            url = pg.sqlalchemy_url()
        else:
            path: Path = tmp_path_factory.mktemp("filters") / "stead.sqlite"
            url = f"sqlite+aiosqlite:///{path}"
        db = Database(url)
        stack.push_async_callback(db.close)
        await db.migrate()
        async with db.transaction() as tx:
            for name, metadata in THREADS.items():
                await tx.threads.insert(new_thread_record(_thread_id(name), metadata))
        yield db


def _thread_id(name: str) -> str:
    return f"00000000-0000-0000-0000-00000000000{ord(name) - ord('a')}"


async def _visible(db: Database, metadata_filter: dict[str, Any]) -> set[str]:
    access = UNRESTRICTED.restrict("threads", metadata_filter)
    async with db.transaction(access) as tx:
        page = await tx.threads.search(
            ids=None,
            metadata=None,
            values=None,
            status=None,
            limit=100,
            offset=0,
            sort_by="created_at",
            sort_order="asc",
        )
        count = await tx.threads.count(metadata=None, values=None, status=None)
    names = {name for name in THREADS if _thread_id(name) in {r["thread_id"] for r in page.rows}}
    assert count == len(names)
    return names


@pytest.mark.parametrize(
    ("metadata_filter", "expected"),
    [
        ({"owner": "alice"}, {"a"}),
        ({"owner": {"$eq": "bob"}}, {"b"}),
        ({"team": "red", "level": 3}, {"a"}),
        ({"members": {"$contains": "alice"}}, {"a", "c"}),
        ({"members": {"$contains": ["alice", "carol"]}}, {"a", "c"}),
        ({"$or": [{"owner": "bob"}, {"members": {"$contains": "alice"}}]}, {"a", "b", "c"}),
        ({"$and": [{"team": "red"}, {"members": {"$contains": "carol"}}]}, {"a"}),
        ({"$or": [{"$and": [{"team": "blue"}, {"level": 3}]}, {"owner": "dave"}]}, {"c", "d"}),
        ({"nested": {"org": "acme"}}, {"d"}),
        ({"owner": "nobody"}, set()),
    ],
)
async def test_filters_select_the_rows_they_name(
    database: Database, metadata_filter: dict[str, Any], expected: set[str]
) -> None:
    assert await _visible(database, metadata_filter) == expected


async def test_two_filters_on_one_resource_must_both_match(database: Database) -> None:
    access = Access().restrict("threads", {"team": "red"}).restrict("threads", {"level": 3})
    async with database.transaction(access) as tx:
        assert await tx.threads.get(_thread_id("a")) is not None
        assert await tx.threads.get(_thread_id("b")) is None
        assert not await tx.threads.delete(_thread_id("b"))
        # Invisible is not absent: an id conflict is still found.
        assert await tx.threads.exists(_thread_id("b"))


@pytest.mark.parametrize(
    "metadata_filter",
    [
        {"$or": [{"owner": "alice"}]},
        {"$not": {"owner": "alice"}},
        {"owner": {"$ne": "alice"}},
        {"$or": [{"$or": [{"$or": [{"a": 1}, {"b": 2}]}, {"c": 3}]}, {"d": 4}]},
    ],
)
def test_filters_the_server_cannot_apply_are_refused(metadata_filter: dict[str, Any]) -> None:
    with pytest.raises(InvalidFilter):
        UNRESTRICTED.restrict("threads", metadata_filter)
