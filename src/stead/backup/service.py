"""Taking a backup and restoring one, on whichever runtime the settings name."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stead import __version__
from stead.backup import embedded, postgres
from stead.backup.archive import file_entry, read_archive, write_archive
from stead.backup.manifest import BackupError, Manifest
from stead.backup.moving import move_into_postgres
from stead.config import Settings
from stead.storage.backends import migrate
from stead.storage.database import Database
from stead.storage.revisions import known_revisions

Say = Callable[[str], None]
_REQUEUE_BATCH = 500
ARCHIVE_PREFIX = "stead-backup-"


@dataclass(frozen=True)
class Restored:
    manifest: Manifest
    migrated_from: str | None  # the backup's schema, when it was older than this Stead's
    requeued_runs: int


def runtime_of(settings: Settings) -> str:
    return "embedded" if settings.postgres_uri is None else "postgres"


async def create_backup(settings: Settings, output: Path, say: Say) -> Manifest:
    """Write an archive of everything the server stores, while it may be serving."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".stead-backup-", dir=output.parent) as scratch:
        if settings.postgres_uri is None:
            files = embedded.snapshot(settings, Path(scratch), say)
            revision = embedded.schema_revision(files)
        else:
            revision = await _schema_revision(settings)
            files = postgres.snapshot(settings.postgres_uri, Path(scratch), say)
        manifest = Manifest(
            stead_version=__version__,
            schema_revision=revision,
            runtime=runtime_of(settings),
            created_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            files={name: file_entry(path) for name, path in files.items()},
        )
        say(f"writing {output}")
        write_archive(output, manifest, files)
    return manifest


def prune_archives(folder: Path, keep: int) -> list[Path]:
    """Delete all but the `keep` newest archives `stead backup --output-dir` wrote in `folder`
    (their names sort by time); the ones deleted."""
    archives = sorted(folder.glob(f"{ARCHIVE_PREFIX}*.tar.gz"))
    removed = archives[: max(0, len(archives) - keep)]
    for archive in removed:
        archive.unlink()
    return removed


async def restore_backup(settings: Settings, archive: Path, force: bool, say: Say) -> Restored:
    """Restore `archive` into the settings' target, which must hold nothing unless `force`.
    The archive is verified in full before the target is touched."""
    # Embedded: scratch on the data folder's file system, so that installing is a rename.
    scratch_parent = settings.data_dir.parent if settings.postgres_uri is None else None
    if scratch_parent is not None:
        scratch_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".stead-restore-", dir=scratch_parent) as scratch:
        say(f"reading {archive}")
        manifest = read_archive(archive, Path(scratch))
        _require_restorable(settings, manifest, force)
        if not force and await _target_holds_data(settings):
            raise BackupError(
                f"{_target_name(settings)} already holds data; pass --force to replace it"
            )
        files = {name: Path(scratch) / name for name in manifest.files}
        if settings.postgres_uri is None:
            embedded.install(settings, files)
        elif manifest.runtime == "embedded":
            await migrate(settings)
            say("moving the embedded data into PostgreSQL")
            await move_into_postgres(files, settings.postgres_uri, say)
        else:
            postgres.install(settings.postgres_uri, files, say)
    older = manifest.schema_revision != known_revisions()[-1]
    if older:
        say(f"migrating from schema {manifest.schema_revision}")
    await migrate(settings)
    return Restored(manifest, manifest.schema_revision if older else None, await _requeue(settings))


def _require_restorable(settings: Settings, manifest: Manifest, force: bool) -> None:
    target = runtime_of(settings)
    if manifest.runtime == "postgres" and target == "embedded":
        raise BackupError(
            "the backup is of PostgreSQL and the target is the embedded default; set "
            "DATABASE_URI to restore it into PostgreSQL"
        )
    if manifest.runtime != target and force:
        raise BackupError(
            "moving the embedded default into PostgreSQL needs an empty database; --force "
            "does not apply (empty it with a new database)"
        )
    known = known_revisions()
    if manifest.schema_revision not in known:
        raise BackupError(
            f"the backup's schema {manifest.schema_revision} is newer than this Stead's "
            f"({known[-1]}): restore it with the Stead that made it ({manifest.stead_version}) "
            "or a newer one"
        )


async def _target_holds_data(settings: Settings) -> bool:
    if settings.postgres_uri is None:
        if not embedded.holds_files(settings):
            return False
        if embedded.store_holds_items(settings):
            return True
    elif postgres.store_holds_items(settings.postgres_uri):
        return True
    db = Database(settings.database_url)
    try:
        return await db.holds_data()
    finally:
        await db.close()


def _target_name(settings: Settings) -> str:
    if settings.postgres_uri is None:
        return f"the data folder {settings.data_dir}"
    return "the database in DATABASE_URI"


async def _schema_revision(settings: Settings) -> str:
    db = Database(settings.database_url)
    try:
        revision = await db.schema_revision()
    finally:
        await db.close()
    if revision is None:
        raise BackupError("the database has no Stead schema: there is nothing to back up")
    return revision


async def _requeue(settings: Settings) -> int:
    """Runs that were running when the backup was taken go back to the queue; the worker that
    claims one resumes it from its last checkpoint."""
    db = Database(settings.database_url)
    requeued = 0
    now = datetime.now(UTC)
    try:
        while True:
            async with db.transaction() as tx:
                running = await tx.runs.expired_leases(now + timedelta(days=36500), _REQUEUE_BATCH)
                for found in running:
                    requeued += await tx.runs.release(found["run_id"], found["attempt"], now)
            if len(running) < _REQUEUE_BATCH:
                return requeued
    finally:
        await db.close()
