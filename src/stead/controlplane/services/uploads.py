"""Source tarballs: `upload-url` hands out a single-use URL on the control plane itself, which
takes the PUT without an API key (as a signed storage URL would) and keeps the file in the data
folder until the deployment is deleted."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from stead.controlplane.services.revisions import find_deployment
from stead.controlplane.storage import ControlPlaneDatabase
from stead.errors import ApiError, BadRequest, Conflict, NotFound
from stead.ids import new_random_id
from stead.services.assistants import now_utc

# The size limit the official signed URLs carry (X-Goog-Content-Length-Range: 0,209715200).
MAX_TARBALL_BYTES = 200 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


class TooLarge(ApiError):
    status_code = 413


class Uploads:
    def __init__(self, db: ControlPlaneDatabase, uploads_dir: Path) -> None:
        self._db = db
        self._dir = uploads_dir

    async def upload_url(self, tenant_id: str, deployment_id: str, base_url: str) -> dict[str, Any]:
        token = secrets.token_urlsafe(32)
        object_path = f"{deployment_id}/{new_random_id()}.tar.gz"
        async with self._db.transaction() as tx:
            await find_deployment(tx, tenant_id, deployment_id)
            await tx.uploads.insert(
                {
                    "object_path": object_path,
                    "deployment_id": deployment_id,
                    "token_hash": _hash(token),
                    "created_at": now_utc(),
                    "received_at": None,
                    "size": None,
                }
            )
        return {
            "upload_url": f"{base_url.rstrip('/')}/v2/uploads/{token}",
            "object_path": object_path,
            "upload_headers": {"X-Goog-Content-Length-Range": f"0,{MAX_TARBALL_BYTES}"},
        }

    async def receive(self, token: str, body: AsyncIterator[bytes]) -> None:
        async with self._db.transaction() as tx:
            upload = await tx.uploads.find_by_token(_hash(token))
        if upload is None:
            raise NotFound("Upload URL not found.")
        if upload["received_at"] is not None:
            raise Conflict("This upload URL was used already; ask for a new one.")
        path = self.path_of(upload["object_path"])
        size = await _write_tarball(path, body)
        async with self._db.transaction() as tx:
            await tx.uploads.mark_received(
                upload["object_path"], {"received_at": now_utc(), "size": size}
            )

    def path_of(self, object_path: str) -> Path:
        return self._dir / object_path

    def remove_deployment(self, deployment_id: str) -> None:
        folder = self._dir / deployment_id
        for file in folder.glob("*.tar.gz"):
            file.unlink()
        if folder.exists():
            folder.rmdir()


async def _write_tarball(path: Path, body: AsyncIterator[bytes]) -> int:
    """Write the body beside `path`, then move it in place: a refused upload leaves nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    size = 0
    try:
        with partial.open("wb") as out:
            async for chunk in body:
                if size == 0 and chunk and not chunk.startswith(_GZIP_MAGIC[: len(chunk)]):
                    raise BadRequest("The upload must be a gzip-compressed tarball.")
                size += len(chunk)
                if size > MAX_TARBALL_BYTES:
                    raise TooLarge(f"The tarball exceeds {MAX_TARBALL_BYTES} bytes.")
                out.write(chunk)
        if size == 0:
            raise BadRequest("The upload is empty.")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return size


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
