"""What the embedded default keeps out of its memory: the PostgreSQL, Redis and key-signing
libraries (psycopg, redis with hiredis, PyJWT with cryptography: 25 MiB resident together),
and Alembic once the schema is current (9 MiB). They are loaded only where they are used."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from stead.storage.database import SCHEMA_HEAD
from stead.storage.revisions import known_revisions
from tests.conftest import GRAPHS_CONFIG
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
    done = subprocess.run(
        [sys.executable, "-c", code], env=stead_env(None), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_current_schema_is_not_handed_to_alembic(tmp_path: Path) -> None:
    database = tmp_path / "stead.db"
    assert _migrate_and_report_alembic(database) == f"{SCHEMA_HEAD} True"
    assert _migrate_and_report_alembic(database) == f"{SCHEMA_HEAD} False"


def test_the_schema_head_is_the_newest_migration() -> None:
    assert known_revisions()[-1] == SCHEMA_HEAD
