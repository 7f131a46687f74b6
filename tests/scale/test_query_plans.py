"""The statements the API and the queue run, planned on a PostgreSQL seeded to 1,000,000 threads
and 10,000,000 checkpoints: PostgreSQL's auto_explain logs the plan of every statement a live
`stead run` executes while it serves the hot requests, and none may scan a large table
sequentially. The scale tier has its own target and budget (`make test-scale`)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import stead_migrate
from tests.support.scale import seed
from tests.support.servers import stead_server
from tests.support.services import Postgres, postgres_server, redis_server

THREADS = 1_000_000
CHECKPOINTS_PER_THREAD = 10
# The seeded ones; on the small ones (a few rows) a sequential scan is the planner's right choice.
LARGE_TABLES = ("thread", "run", "checkpoints")
_SEQ_SCAN = re.compile(r"Seq Scan on (\w+)")


@pytest.fixture(scope="module")
def seeded() -> Iterator[Postgres]:
    with postgres_server() as pg:
        conf = pg.data_dir / "postgresql.conf"
        conf.write_text(conf.read_text() + "\nshared_preload_libraries = 'auto_explain'\n")
        pg.stop()
        pg.start()
        assert stead_migrate(GRAPHS_CONFIG, pg.url()).returncode == 0
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            seed(conn, THREADS, CHECKPOINTS_PER_THREAD)
        yield pg


def _explain_everything(conn: psycopg.Connection, on: bool) -> None:
    setting = "0" if on else "-1"
    conn.execute(f"ALTER SYSTEM SET auto_explain.log_min_duration = {setting}")
    conn.execute("SELECT pg_reload_conf()")


def _hot_requests(url: str) -> None:
    """What clients do most: threads and their state, runs, searches, the queue."""
    with httpx.Client(base_url=url, timeout=60) as client:
        thread = client.post("/threads", json={"metadata": {"user": "u7"}}).json()
        tid = thread["thread_id"]
        waited = client.post(
            f"/threads/{tid}/runs/wait", json={"assistant_id": "echo", "input": {"text": "hi"}}
        )
        assert waited.status_code == 200, waited.text
        stateless = client.post("/runs/wait", json={"assistant_id": "echo", "input": {"text": "x"}})
        assert stateless.status_code == 200, stateless.text
        for path in (f"/threads/{tid}", f"/threads/{tid}/state", f"/threads/{tid}/runs"):
            assert client.get(path).status_code == 200, path
        assert client.post(f"/threads/{tid}/history", json={"limit": 5}).status_code == 200
        for body in ({"limit": 10}, {"metadata": {"user": "u7"}, "limit": 10},
                     {"status": "busy", "limit": 10}, {"limit": 10, "offset": 500}):  # fmt: skip
            assert client.post("/threads/search", json=body).status_code == 200, body
        assert client.post("/threads/count", json={"metadata": {"user": "u7"}}).status_code == 200
        assert client.post("/assistants/search", json={"limit": 10}).status_code == 200
        # Told from thread_tally, not counted: one thread more than seeded.
        total = client.post("/threads/search", json={"limit": 1}).headers["X-Pagination-Total"]
        assert int(total) == THREADS + 1


def test_no_hot_statement_scans_a_large_table(seeded: Postgres, tmp_path: Path) -> None:
    log = seeded.data_dir.parent / "pg.log"
    with redis_server() as redis:
        env = {"DATABASE_URI": seeded.url(), "REDIS_URI": redis.url}
        with (
            stead_server(GRAPHS_CONFIG, tmp_path / "data", env, timeout=60) as server,
            psycopg.connect(seeded.url(), autocommit=True) as conn,
        ):
            start = log.stat().st_size
            _explain_everything(conn, on=True)
            time.sleep(0.5)
            _hot_requests(server.url)
            # The worker's idle polls of the queue, the reaper and the cron scheduler too.
            time.sleep(3)
            _explain_everything(conn, on=False)
    with log.open(errors="replace") as plans:
        plans.seek(start)
        logged = plans.read()
    assert "Query Text:" in logged, "auto_explain logged nothing"
    scanned = [table for table in _SEQ_SCAN.findall(logged) if table in LARGE_TABLES]
    assert not scanned, _offending(logged, set(scanned))


def _offending(logged: str, tables: set[str]) -> str:
    entries = logged.split("LOG:  duration:")
    found = [entry for entry in entries if any(f"Seq Scan on {t}" in entry for t in tables)]
    return "sequential scans of large tables:\n" + "\n---\n".join(found[:5])
