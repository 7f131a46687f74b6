"""What a server keeps out of its memory. The embedded default does without the PostgreSQL,
Redis and key-signing libraries (psycopg, redis with hiredis, PyJWT with cryptography: 25 MiB
resident together), and without Alembic once the schema is current (9 MiB): they are loaded
only where they are used. Large blocks go back to the system once freed, and a run's last
values go out as they were encoded, without a copy."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from stead import serde
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
