"""`stead backup` and `stead restore`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stead.backup.manifest import BackupError, Manifest
from stead.backup.s3 import is_s3

if TYPE_CHECKING:
    from stead.backup.s3 import S3Location
    from stead.config import Settings


def add_backup_commands(commands: Any, project_arguments: Callable[[Any], None]) -> None:
    backup = commands.add_parser(
        "backup", help="write an archive of everything the server stores (while it serves)"
    )
    project_arguments(backup)
    where = backup.add_mutually_exclusive_group()
    where.add_argument(
        "--output",
        help="archive path or s3://bucket/key (default: ./stead-backup-<UTC time>.tar.gz)",
    )
    where.add_argument(
        "--output-dir",
        help="write stead-backup-<UTC time>.tar.gz in this folder or s3://bucket/prefix",
    )
    backup.add_argument(
        "--keep",
        type=int,
        help="with --output-dir: keep this many archives there, deleting the oldest",
    )
    backup.set_defaults(handler=_backup)
    restore = commands.add_parser(
        "restore", help="restore an archive into an empty data folder or database"
    )
    project_arguments(restore)
    restore.add_argument("archive", help="archive path or s3://bucket/key")
    restore.add_argument("--force", action="store_true", help="replace a target that holds data")
    restore.set_defaults(handler=_restore)


def _backup(args: argparse.Namespace) -> int:
    from stead.backup.service import ARCHIVE_PREFIX
    from stead.config import load_settings

    if args.keep is not None and (args.output_dir is None or args.keep < 1):
        raise BackupError("--keep takes a number of at least 1, and needs --output-dir")
    settings = load_settings(args.config, data_dir=args.data_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
    name = f"{ARCHIVE_PREFIX}{stamp}Z.tar.gz"
    if is_s3(args.output or args.output_dir or ""):
        print(_backup_to_s3(settings, args, name))
    else:
        print(_backup_to_folder(settings, args, name))
    return 0


def _backup_to_folder(settings: Settings, args: argparse.Namespace, name: str) -> Path:
    from stead.backup.service import create_backup, prune_archives

    output = Path(args.output) if args.output else Path(args.output_dir or ".") / name
    _say_written(asyncio.run(create_backup(settings, output, _say)))
    if args.keep is not None:
        for removed in prune_archives(Path(args.output_dir), args.keep):
            _say(f"removed {removed}, beyond the {args.keep} kept")
    return output


def _backup_to_s3(settings: Settings, args: argparse.Namespace, name: str) -> S3Location:
    """Written locally (in TMPDIR), then uploaded: nothing half-written lands in the bucket."""
    from stead.backup.s3 import S3Archives, S3Location
    from stead.backup.service import ARCHIVE_PREFIX, create_backup

    folder = None if args.output else S3Location.parse(args.output_dir)
    target = folder.child(name) if folder is not None else S3Location.parse(args.output)
    archives = S3Archives()
    with tempfile.TemporaryDirectory(prefix="stead-backup-") as scratch:
        local = Path(scratch) / name
        _say_written(asyncio.run(create_backup(settings, local, _say)))
        _say(f"uploading to {target}")
        archives.upload(local, target)
    if folder is not None and args.keep is not None:
        for removed in archives.prune(folder, ARCHIVE_PREFIX, args.keep):
            _say(f"removed {removed}, beyond the {args.keep} kept")
    return target


def _say_written(manifest: Manifest) -> None:
    _say(f"backup of the {manifest.runtime} runtime at schema {manifest.schema_revision} written")


def _restore(args: argparse.Namespace) -> int:
    from stead.backup.service import restore_backup
    from stead.config import load_settings

    settings = load_settings(args.config, data_dir=args.data_dir)
    with _local_archive(args.archive) as archive:
        restored = asyncio.run(restore_backup(settings, archive, args.force, _say))
    migrated = f", migrated from {restored.migrated_from}" if restored.migrated_from else ""
    print(
        f"restored the backup of {restored.manifest.created_at}{migrated}; "
        f"{restored.requeued_runs} run(s) that were running are queued again"
    )
    return 0


@contextlib.contextmanager
def _local_archive(archive: str) -> Iterator[Path]:
    """The archive as a local file: an S3 one is downloaded to TMPDIR first."""
    if not is_s3(archive):
        yield Path(archive)
        return
    from stead.backup.s3 import S3Archives, S3Location

    location = S3Location.parse(archive)
    with tempfile.TemporaryDirectory(prefix="stead-restore-") as scratch:
        local = Path(scratch) / "archive.tar.gz"
        _say(f"downloading {location}")
        S3Archives().download(location, local)
        yield local


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
