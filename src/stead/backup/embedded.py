"""The embedded default's data: three SQLite files, copied with SQLite's online backup while the
server writes to them."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from stead.backup.manifest import BackupError
from stead.config import Settings

Say = Callable[[str], None]


def data_files(settings: Settings) -> dict[str, Path]:
    """The files in the order they are copied: Stead's tables first, so that a checkpoint is
    never older than the run that wrote it (a run found running resumes from the newer one)."""
    return {
        "stead.sqlite": settings.database_path,
        "checkpoints.sqlite": settings.checkpoints_path,
        "store.sqlite": settings.store_path,
    }


def snapshot(settings: Settings, into: Path, say: Say) -> dict[str, Path]:
    copies = {}
    for name, source in data_files(settings).items():
        if not source.is_file():
            raise BackupError(f"{source} does not exist: there is nothing to back up there")
        say(f"copying {name} ({source.stat().st_size / 1e6:.1f} MB)")
        copies[name] = into / name
        with (
            closing(sqlite3.connect(source)) as live,
            closing(sqlite3.connect(into / name)) as copy,
        ):
            # One step: one read transaction, so the copy is the file at one moment.
            live.backup(copy, pages=-1)
    return copies


def schema_revision(copies: dict[str, Path]) -> str:
    with closing(sqlite3.connect(copies["stead.sqlite"])) as db:
        try:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"stead.sqlite has no schema version ({exc})") from None
    if row is None:
        raise BackupError("stead.sqlite has no schema version")
    return str(row[0])


def holds_files(settings: Settings) -> bool:
    return any(path.exists() for path in data_files(settings).values())


def store_holds_items(settings: Settings) -> bool:
    if not settings.store_path.is_file():
        return False
    with closing(sqlite3.connect(settings.store_path)) as db:
        try:
            return db.execute("SELECT 1 FROM store LIMIT 1").fetchone() is not None
        except sqlite3.OperationalError:
            return False


def install(settings: Settings, files: dict[str, Path]) -> None:
    """Put the restored files in place of the target's: all of them staged beside their final
    names first, then each moved in, so that a failure while staging changes nothing."""
    targets = data_files(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    staged = {}
    for name, path in files.items():
        staged[name] = targets[name].with_name(targets[name].name + ".restoring")
        shutil.move(path, staged[name])
    for name, path in staged.items():
        for journal in ("-wal", "-shm"):
            targets[name].with_name(targets[name].name + journal).unlink(missing_ok=True)
        path.replace(targets[name])
