"""The archive: a gzip-compressed tar with the manifest first, then the data files. It is written
beside its final name and moved there when complete, and read back only into a scratch folder,
checksums verified, before anything is restored from it."""

from __future__ import annotations

import hashlib
import tarfile
import zlib
from io import BytesIO
from pathlib import Path

from stead.backup.manifest import MANIFEST_NAME, BackupError, FileEntry, Manifest
from stead.backup.progress import CountedReader, progress_bar
from stead.tarballs import extract_member

_CHUNK = 1024 * 1024


def file_entry(path: Path) -> FileEntry:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(_CHUNK):
            digest.update(chunk)
    return FileEntry(sha256=digest.hexdigest(), size=path.stat().st_size)


def write_archive(output: Path, manifest: Manifest, files: dict[str, Path]) -> None:
    partial = output.with_name(output.name + ".partial")
    try:
        # Level 1: most of the size gain of gzip at a fraction of its time on large databases.
        with tarfile.open(partial, "w:gz", compresslevel=1) as archive:
            body = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST_NAME)
            info.size = len(body)
            archive.addfile(info, BytesIO(body))
            total = sum(path.stat().st_size for path in files.values())
            with progress_bar(f"writing {output.name}", total) as advance:
                for name, path in files.items():
                    with path.open("rb") as data:
                        info = archive.gettarinfo(arcname=name, fileobj=data)
                        archive.addfile(info, CountedReader(data, advance))
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)


def read_archive(path: Path, into: Path) -> Manifest:
    """The archive's manifest, with its files extracted into `into` and verified."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        manifest = _extract(path, into)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise BackupError(f"{path} is corrupt or truncated ({exc})") from None
    for name, expected in manifest.files.items():
        extracted = into / name
        if not extracted.is_file():
            raise BackupError(f"{path} is incomplete: {name} is missing")
        if file_entry(extracted) != expected:
            raise BackupError(f"{path} is corrupt: {name} does not match its checksum")
    return manifest


def _extract(path: Path, into: Path) -> Manifest:
    with (
        path.open("rb") as raw,
        progress_bar(f"reading {path.name}", path.stat().st_size) as advance,
        tarfile.open(fileobj=CountedReader(raw, advance), mode="r:gz") as archive,
    ):
        first = archive.next()
        body = archive.extractfile(first) if first is not None else None
        if first is None or first.name != MANIFEST_NAME or body is None:
            raise BackupError(f"{path} is not a Stead backup: it does not start with a manifest")
        try:
            manifest = Manifest.from_json(body.read())
        except BackupError as exc:
            raise BackupError(f"{path}: {exc}") from None
        for member in archive:
            if member.name == MANIFEST_NAME:
                continue
            if member.name not in manifest.files:
                raise BackupError(f"{path} holds {member.name!r}, which its manifest does not list")
            extract_member(archive, member, into)
    return manifest
