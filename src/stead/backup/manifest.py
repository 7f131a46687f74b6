"""The archive's manifest: what made it, what schema its data is at, and each file's checksum."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
RUNTIMES = ("embedded", "postgres")


class BackupError(Exception):
    """A backup or restore that cannot go on; its message is one line for the operator."""


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    stead_version: str
    schema_revision: str
    runtime: str
    created_at: str
    files: dict[str, FileEntry]
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw: dict[str, Any] = json.loads(data)
            files = {name: FileEntry(**entry) for name, entry in raw.pop("files").items()}
            manifest = cls(files=files, **raw)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise BackupError(f"its manifest is not readable ({exc})") from None
        if manifest.format_version != FORMAT_VERSION:
            raise BackupError(
                f"its format {manifest.format_version} is not this Stead's ({FORMAT_VERSION})"
            )
        if manifest.runtime not in RUNTIMES:
            raise BackupError(f"its runtime {manifest.runtime!r} is unknown")
        return manifest
