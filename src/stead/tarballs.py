"""Extracting tar members safely on every Python 3.11: with the standard "data" filter where the
tarfile module has it (3.11.4 and later), else with the same essential checks made here (Debian
12's Python is 3.11.2)."""

from __future__ import annotations

import tarfile
from pathlib import Path


def extract_all(archive: tarfile.TarFile, target: Path) -> None:
    for member in archive:
        extract_member(archive, member, target)


def extract_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    """Extract `member` under `target`, refusing links, devices and paths that leave it."""
    if hasattr(tarfile, "data_filter"):
        archive.extract(member, target, filter="data")
        return
    _require_plain(member, target)
    archive.extract(member, target)


def _require_plain(member: tarfile.TarInfo, target: Path) -> None:
    if not (member.isfile() or member.isdir()):
        raise tarfile.TarError(f"{member.name!r} is not a plain file or folder")
    destination = (target / member.name).resolve()
    if member.name.startswith("/") or not destination.is_relative_to(target.resolve()):
        raise tarfile.TarError(f"{member.name!r} would be written outside the target folder")
    # Permissions as the data filter leaves them: no set-id bits, no group or other writes.
    member.mode = (member.mode & 0o755) | (0o700 if member.isdir() else 0o600)
    member.uid = member.gid = 0
    member.uname = member.gname = ""
