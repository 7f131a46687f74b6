"""What a server keeps out of its memory. The embedded default does without the PostgreSQL,
Redis and key-signing libraries (psycopg, redis with hiredis, PyJWT with cryptography: 25 MiB
resident together) and SQLAlchemy's asyncio layer with its ORM (7 MiB: its SQLite tables go
through the synchronous engine), without croniter until a cron schedule is read, and without
Alembic (9 MiB) unless it upgrades an older schema: a new SQLite database is made from the
tables' metadata, as the migrations would make it. They are loaded only where they are used.
Large blocks go back to the system once freed, what the server made to start is kept out of the
collector's passes, its young objects are collected less often, and a run's last values go out
as they were encoded, without a copy. (The same probe shows the server's GIL switch interval.)"""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from stead import serde
from stead.allocator import YOUNG_COLLECTION_THRESHOLD
from stead.gil import SWITCH_INTERVAL_SECONDS
from stead.storage.database import SCHEMA_HEAD
from stead.storage.revisions import known_revisions
from tests.conftest import GRAPHS_CONFIG
from tests.support.schema import migrate_sqlite_to
from tests.support.servers import stead_env, stead_server

# Their compiled parts, as the process maps them (site-packages/<name>/...so).
UNUSED_ON_EMBEDDED = ("psycopg_binary", "hiredis", "cryptography")


def _mapped_packages(pid: int) -> set[str]:
    maps = Path(f"/proc/{pid}/maps").read_text()
    return {name for name in UNUSED_ON_EMBEDDED if f"/site-packages/{name}/" in maps}


def test_an_embedded_server_maps_no_postgres_redis_or_signing_library() -> None:
    with stead_server(GRAPHS_CONFIG) as server:
        answer = httpx.post(
            f"{server.url}/runs/wait",
            json={"assistant_id": "echo", "input": {"text": "hi"}},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json() == {"text": "hi"}
        assert _mapped_packages(server.process.pid) == set()


# Imported only where they are used: SQLAlchemy's asyncio layer with its ORM (7 MiB) by the
# PostgreSQL runtime, croniter (0.5 MiB) once a cron schedule is read.
UNIMPORTED_ON_EMBEDDED = ("sqlalchemy.ext.asyncio", "sqlalchemy.orm", "croniter")


def test_a_started_server_keeps_its_startup_objects_out_of_collections(tmp_path: Path) -> None:
    probe = _probe(tmp_path)
    # Modules, classes, the app and the graphs: well over a hundred thousand objects.
    assert probe.frozen > 100_000


def test_a_started_server_collects_its_young_objects_less_often(tmp_path: Path) -> None:
    probe = _probe(tmp_path)
    default = gc.get_threshold()
    assert probe.thresholds == (YOUNG_COLLECTION_THRESHOLD, *default[1:])
    assert default[0] < YOUNG_COLLECTION_THRESHOLD


def test_a_started_server_hands_the_gil_to_a_waiting_thread_sooner(tmp_path: Path) -> None:
    """Its graphs' synchronous nodes run on a thread pool (stead.gil)."""
    probe = _probe(tmp_path)
    assert probe.switch_interval == pytest.approx(SWITCH_INTERVAL_SECONDS)
    # Python's default, in this process: the server's is its own.
    assert sys.getswitchinterval() > SWITCH_INTERVAL_SECONDS


def test_cyclic_garbage_is_still_collected_without_being_asked() -> None:
    code = (
        "import gc, weakref\n"
        "from stead.allocator import YOUNG_COLLECTION_THRESHOLD, collect_young_objects_less_often\n"
        "collect_young_objects_less_often()\n"
        "class Node: pass\n"
        "def cycle():\n"
        "    a, b = Node(), Node(); a.other, b.other = b, a\n"
        "    return weakref.ref(a)\n"
        "first = cycle()\n"
        "after = [cycle() for _ in range(YOUNG_COLLECTION_THRESHOLD)]\n"
        "print(first() is None, gc.isenabled())\n"
    )
    assert _python(code) == "True True"


def test_a_server_that_served_runs_and_searches_imports_no_asyncio_layer_or_croniter(
    tmp_path: Path,
) -> None:
    modules = _probe(tmp_path).modules
    assert "sqlalchemy" in modules and "langgraph.pregel" in modules
    assert [name for name in UNIMPORTED_ON_EMBEDDED if name in modules] == []


def test_croniter_is_imported_to_read_a_schedule() -> None:
    code = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from stead.services.crons import next_run_after\n"
        "half_past = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)\n"
        "print(next_run_after('0 * * * *', None, half_past), 'croniter' in sys.modules)\n"
    )
    assert _python(code) == "2026-01-01 01:00:00+00:00 True"


@dataclass
class _Probe:
    frozen: int
    thresholds: tuple[int, ...]
    switch_interval: float
    modules: set[str]


def _probe(tmp_path: Path) -> _Probe:
    """A started server's frozen objects, collector thresholds, GIL switch interval and imported
    modules once it has served a run, a thread and a search (tests/support/gc_probe)."""
    report = tmp_path / "probe"
    probe = Path(__file__).parents[1] / "support" / "gc_probe"
    env = {"PYTHONPATH": str(probe), "STEAD_GC_PROBE_OUT": str(report)}
    with stead_server(GRAPHS_CONFIG, env=env) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            ran = client.post("/runs/wait", json={"assistant_id": "echo", "input": {"text": "hi"}})
            assert ran.status_code == 200
            assert client.post("/threads", json={}).status_code == 200
            assert client.post("/threads/search", json={}).status_code == 200
        os.kill(server.process.pid, signal.SIGUSR1)
        for _ in range(100):
            if report.exists():
                break
            time.sleep(0.05)
    frozen, thresholds, interval, *modules = report.read_text().splitlines()
    return _Probe(int(frozen), tuple(map(int, thresholds.split())), float(interval), set(modules))


def test_freezing_collects_the_garbage_of_starting_first() -> None:
    code = (
        "import gc, weakref\n"
        "from stead.allocator import freeze_startup_objects\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.other, b.other = b, a\n"
        "gone = weakref.ref(a); del a, b\n"
        "freeze_startup_objects()\n"
        "print(gone() is None, gc.get_freeze_count() > 0)\n"
    )
    assert _python(code) == "True True"


def test_the_probe_sees_a_library_that_is_loaded() -> None:
    code = "import psycopg, redis, cryptography.hazmat.bindings._rust, sys; sys.stdin.read()"
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, text=True)
    try:
        _wait_until_imported(process.pid)
        assert _mapped_packages(process.pid) == set(UNUSED_ON_EMBEDDED)
    finally:
        process.communicate("")


def _wait_until_imported(pid: int) -> None:
    for _ in range(200):
        if len(_mapped_packages(pid)) == len(UNUSED_ON_EMBEDDED):
            return
        time.sleep(0.05)


def _migrate_and_report_alembic(database: Path) -> str:
    code = (
        "import asyncio, sys\n"
        "from stead.storage.database import Database\n"
        "async def main():\n"
        f"    db = Database('sqlite+aiosqlite:///{database}')\n"
        "    await db.migrate()\n"
        "    print(await db.schema_revision(), 'alembic' in sys.modules)\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
    )
    return _python(code)


def _python(code: str) -> str:
    """What `code` prints, run by a Python of its own with Stead importable."""
    done = subprocess.run(
        [sys.executable, "-c", code], env=stead_env(None), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_new_database_is_made_without_alembic_as_the_migrations_make_it(
    tmp_path: Path,
) -> None:
    new = tmp_path / "new.db"
    assert _migrate_and_report_alembic(new) == f"{SCHEMA_HEAD} False"
    older = tmp_path / "older.db"
    migrate_sqlite_to(older, known_revisions()[-2])
    assert _migrate_and_report_alembic(older) == f"{SCHEMA_HEAD} True"
    assert _sqlite_schema(new) == _sqlite_schema(older)


def test_a_current_schema_is_not_handed_to_alembic(tmp_path: Path) -> None:
    database = tmp_path / "stead.db"
    migrate_sqlite_to(database, SCHEMA_HEAD)
    assert _migrate_and_report_alembic(database) == f"{SCHEMA_HEAD} False"


def _sqlite_schema(database: Path) -> dict[str, Any]:
    """Each table's columns, foreign keys and indexes (with their SQL), as SQLite reports them."""
    conn = sqlite3.connect(database)
    tables = [name for (name,) in conn.execute(_TABLES)]
    schema = {
        table: {
            "columns": conn.execute(f"PRAGMA table_info('{table}')").fetchall(),
            "foreign keys": sorted(conn.execute(f"PRAGMA foreign_key_list('{table}')")),
            "indexes": sorted(_indexes(conn, table)),
        }
        for table in tables
    }
    conn.close()
    return schema


_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"


def _indexes(conn: sqlite3.Connection, table: str) -> Iterator[tuple[Any, ...]]:
    for _, name, unique, origin, partial in conn.execute(f"PRAGMA index_list('{table}')"):
        columns = tuple(row[2] for row in conn.execute(f"PRAGMA index_info('{name}')"))
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
        yield name, unique, origin, partial, columns, sql[0]


def test_the_schema_head_is_the_newest_migration() -> None:
    assert known_revisions()[-1] == SCHEMA_HEAD


# Frees a 24 MiB block, then fills and frees a 16 MiB one; prints how much of the latter stayed.
_FREED_BLOCK_PROBE = """
import resource, sys
from stead.allocator import return_large_blocks_to_the_system
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()
if sys.argv[1] == "fixed":
    assert return_large_blocks_to_the_system()
first = b"x" * (24 * 2**20)
del first
before = resident()
second = b"x" * (16 * 2**20)
del second
print((resident() - before) // 2**20)
"""


def _mib_kept_after_free(setting: str) -> int:
    env = stead_env(None)
    env.pop("MALLOC_MMAP_THRESHOLD_", None)  # glibc's own setting would decide instead
    done = subprocess.run(
        [sys.executable, "-c", _FREED_BLOCK_PROBE, setting], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def test_large_blocks_go_back_to_the_system_once_freed() -> None:
    # glibc's default: the freed 24 MiB block raises the threshold, the 16 MiB one stays.
    assert _mib_kept_after_free("default") >= 15
    assert _mib_kept_after_free("fixed") == 0


def test_encoded_json_is_sent_as_it_is() -> None:
    values = b'{"text":"' + b"x" * 2**20 + b'"}'
    assert serde.dumps(serde.Encoded(values)) is values
    assert serde.dumps({"values": serde.Encoded(b"[1,2]")}) == b'{"values":[1,2]}'
