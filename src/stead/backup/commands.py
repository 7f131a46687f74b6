"""`stead backup` and `stead restore`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stead.backup.manifest import BackupError


def add_backup_commands(commands: Any, project_arguments: Callable[[Any], None]) -> None:
    backup = commands.add_parser(
        "backup", help="write an archive of everything the server stores (while it serves)"
    )
    project_arguments(backup)
    where = backup.add_mutually_exclusive_group()
    where.add_argument(
        "--output", type=Path, help="archive path (default: ./stead-backup-<UTC time>.tar.gz)"
    )
    where.add_argument(
        "--output-dir", type=Path, help="write stead-backup-<UTC time>.tar.gz in this folder"
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
    restore.add_argument("archive", type=Path)
    restore.add_argument("--force", action="store_true", help="replace a target that holds data")
    restore.set_defaults(handler=_restore)


def _backup(args: argparse.Namespace) -> int:
    from stead.backup.service import ARCHIVE_PREFIX, create_backup, prune_archives
    from stead.config import load_settings

    if args.keep is not None and (args.output_dir is None or args.keep < 1):
        raise BackupError("--keep takes a number of at least 1, and needs --output-dir")
    settings = load_settings(args.config, data_dir=args.data_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")[:-3]
    name = f"{ARCHIVE_PREFIX}{stamp}Z.tar.gz"
    output = args.output or (args.output_dir or Path()) / name
    manifest = asyncio.run(create_backup(settings, output, _say))
    _say(f"backup of the {manifest.runtime} runtime at schema {manifest.schema_revision} written")
    if args.keep is not None:
        for removed in prune_archives(args.output_dir, args.keep):
            _say(f"removed {removed}, beyond the {args.keep} kept")
    print(output)
    return 0


def _restore(args: argparse.Namespace) -> int:
    from stead.backup.service import restore_backup
    from stead.config import load_settings

    settings = load_settings(args.config, data_dir=args.data_dir)
    restored = asyncio.run(restore_backup(settings, args.archive, args.force, _say))
    migrated = f", migrated from {restored.migrated_from}" if restored.migrated_from else ""
    print(
        f"restored the backup of {restored.manifest.created_at}{migrated}; "
        f"{restored.requeued_runs} run(s) that were running are queued again"
    )
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
