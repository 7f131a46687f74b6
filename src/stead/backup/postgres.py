"""A PostgreSQL runtime's data: Stead's tables, the checkpoints and the store, all in one
database, dumped with `pg_dump` (one consistent snapshot) and restored with `pg_restore` in one
transaction."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psycopg

from stead.backup.manifest import BackupError

Say = Callable[[str], None]
DUMP_NAME = "postgres.dump"


def snapshot(uri: str, into: Path, say: Say) -> dict[str, Path]:
    dump = into / DUMP_NAME
    say("dumping the database (pg_dump)")
    _run(_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
         "--file", str(dump), "--dbname", uri)  # fmt: skip
    return {DUMP_NAME: dump}


def store_holds_items(uri: str) -> bool:
    with psycopg.connect(uri) as conn:
        if conn.execute("SELECT to_regclass('store')").fetchone() == (None,):
            return False
        return conn.execute("SELECT 1 FROM store LIMIT 1").fetchone() is not None


def install(uri: str, files: dict[str, Path], say: Say) -> None:
    """Restore the dump in one transaction: on any error the target is as it was. Objects the
    dump holds replace those of the same name (an empty, migrated target has them)."""
    say("restoring the database (pg_restore)")
    _run(_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction",
         "--exit-on-error", "--clean", "--if-exists", "--dbname", uri,
         str(files[DUMP_NAME]))  # fmt: skip


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed; it comes with PostgreSQL's client "
            "(apt-get install postgresql-client), at the server's major version or newer"
        )
    return found


def _run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BackupError(f"{Path(command[0]).name} failed: {last}")
