"""Backup, restore and the move into PostgreSQL, timed on a seeded server's data:

- N threads (rows in Stead's thread table) with M checkpoints each, written by LangGraph's own
  savers as a graph's steps would write them, on the embedded default and on PostgreSQL 15;
- `stead backup` of it (seconds, archive size), `stead restore` into an empty target, and
  `stead restore` of the embedded archive into an empty PostgreSQL (the move).

    python bench/backup.py [--threads 10000] [--checkpoints 10]

The official server has no backup command to run beside it; the figures stand alone. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from langgraph.checkpoint.base import empty_checkpoint  # noqa: E402
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver  # noqa: E402
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver  # noqa: E402
from tests.support.services import postgres_server  # noqa: E402

from stead.config import load_settings  # noqa: E402
from stead.storage.database import Database  # noqa: E402
from stead.storage.schema import thread  # noqa: E402

CONFIG = REPO_ROOT / "tests" / "graphs" / "langgraph.json"


def stead(*args: str, env: dict[str, str]) -> float:
    """Run a stead command; its wall time in seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stead", *args, "--config", str(CONFIG)],
        env={**os.environ, **env}, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"stead {args[0]} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


async def seed(env: dict[str, str], data_dir: Path, threads: int, per_thread: int) -> None:
    os.environ.update(env)
    settings = load_settings(CONFIG, data_dir=str(data_dir))
    now = datetime.now(UTC)
    ids = [str(uuid.uuid4()) for _ in range(threads)]
    db = Database(settings.database_url)
    try:
        async with db.engine.begin() as conn:
            for start in range(0, threads, 1000):
                rows = [_thread(i, now) for i in ids[start : start + 1000]]
                await conn.execute(thread.insert(), rows)
    finally:
        await db.close()
    if settings.postgres_uri is None:
        async with AsyncSqliteSaver.from_conn_string(str(settings.checkpoints_path)) as saver:
            await _checkpoints(saver, ids, per_thread)
    else:
        async with AsyncPostgresSaver.from_conn_string(settings.postgres_uri) as saver:
            await _checkpoints(saver, ids, per_thread)
    for key in env:
        os.environ.pop(key, None)


def _thread(thread_id: str, now: datetime) -> dict[str, Any]:
    return {
        "thread_id": thread_id, "metadata": {"bench": "backup"}, "config": {}, "status": "idle",
        "values": {"messages": ["hello"]}, "interrupts": {}, "error": None,
        "created_at": now, "updated_at": now, "state_updated_at": now,
    }  # fmt: skip


async def _checkpoints(saver: Any, thread_ids: list[str], per_thread: int) -> None:
    await saver.setup()
    for thread_id in thread_ids:
        config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        for step in range(per_thread):
            checkpoint = empty_checkpoint()
            checkpoint["channel_values"] = {"messages": [f"message {n}" for n in range(step + 1)]}
            checkpoint["channel_versions"] = {"messages": step + 1}
            metadata: Any = {"source": "loop", "step": step, "parents": {}}
            config = await saver.aput(config, checkpoint, metadata, {"messages": step + 1})


def measure(runtime: str, env: dict[str, str], fresh: dict[str, str], root: Path,
            threads: int, per_thread: int) -> dict[str, Any]:  # fmt: skip
    source, target = root / f"{runtime}-source", root / f"{runtime}-target"
    stead("migrate", "--data-dir", str(source), env=env)
    asyncio.run(seed(env, source, threads, per_thread))
    archive = root / f"{runtime}.tar.gz"
    backup = stead("backup", "--data-dir", str(source), "--output", str(archive), env=env)
    restore = stead("restore", str(archive), "--data-dir", str(target), env=fresh)
    return {
        "backup": backup,
        "restore": restore,
        "size": archive.stat().st_size,
        "archive": archive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--checkpoints", type=int, default=10, help="per thread")
    args = parser.parse_args()
    total = args.threads * args.checkpoints
    print(f"{args.threads:,} threads, {total:,} checkpoints; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp, postgres_server(
        databases=("source", "target", "moved")
    ) as pg:  # fmt: skip
        root = Path(tmp)
        figures = {
            "embedded (SQLite)": measure("embedded", {}, {}, root, args.threads, args.checkpoints),
            "PostgreSQL 15": measure(
                "postgres", {"DATABASE_URI": pg.url("source")},
                {"DATABASE_URI": pg.url("target")}, root, args.threads, args.checkpoints,
            ),
        }  # fmt: skip
        move = stead(
            "restore", str(figures["embedded (SQLite)"]["archive"]), "--data-dir",
            str(root / "moved"), env={"DATABASE_URI": pg.url("moved")},
        )  # fmt: skip
    print("| runtime | `stead backup` | archive | `stead restore` |")
    print("|---|---|---|---|")
    for name, found in figures.items():
        print(
            f"| {name} | {found['backup']:.1f} s | {found['size'] / 1e6:.1f} MB "
            f"| {found['restore']:.1f} s |"
        )
    print(f"\nMoving the embedded backup into PostgreSQL (`stead restore`): {move:.1f} s")


if __name__ == "__main__":
    main()
