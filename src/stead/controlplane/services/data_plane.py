"""What data planes ask of the control plane: a listener reads the desired state of the
deployments placed on it and reports back revision statuses, log lines and heartbeats; a server
started with DEPLOYMENT_TYPE=self_hosted_data_plane reports its own health. Both authenticate with
an enrollment key whose subject is their tenant (by name or id)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from stead.controlplane.services import statuses
from stead.controlplane.services.secrets import SecretBox
from stead.controlplane.services.uploads import Uploads
from stead.controlplane.storage import ControlPlaneDatabase, ControlPlaneTransaction
from stead.errors import AuthError, Conflict, NotFound
from stead.ids import new_random_id
from stead.licenses import InvalidLicense, LicenseError, verify_license
from stead.services.assistants import now_utc

LOG_TYPES = ("build", "deploy")


class LicenseRefused(AuthError):
    """An enrollment key refused; `code` is INVALID_LICENSE or LICENSE_EXPIRED."""

    def __init__(self, error: LicenseError) -> None:
        super().__init__(401 if error.code == "LICENSE_EXPIRED" else 403, f"{error.code}: {error}")
        self.code = error.code


class DataPlane:
    def __init__(
        self,
        db: ControlPlaneDatabase,
        box: SecretBox,
        public_key: Ed25519PublicKey,
        uploads: Uploads,
    ) -> None:
        self._db = db
        self._box = box
        self._public_key = public_key
        self._uploads = uploads

    async def listener(self, listener_id: str, token: str | None) -> dict[str, Any]:
        """The listener `token` enrolls, or LicenseRefused / NotFound."""
        subject = self._verified_subject(token)
        async with self._db.transaction() as tx:
            found = await tx.listeners.get_any_tenant(listener_id)
            tenant = await tx.tenants.find(found["tenant_id"]) if found else None
        if found is None or tenant is None:
            raise NotFound(f"Listener ID {listener_id} not found.")
        if subject not in (tenant["id"], tenant["name"]):
            raise LicenseRefused(
                InvalidLicense(f"it enrolls into workspace {subject!r}, not this listener's")
            )
        return found

    async def desired_state(self, listener: dict[str, Any]) -> list[dict[str, Any]]:
        """Each deployment placed on the listener, with the revision it should run (the latest,
        unless that one failed) and the one it runs now."""
        async with self._db.transaction() as tx:
            rows = await tx.deployments.list_on_listener(listener["id"])
            return [await self._desired(tx, row) for row in rows]

    async def report_status(
        self,
        listener: dict[str, Any],
        revision_id: str,
        status: str,
        message: str | None,
        url: str | None,
    ) -> None:
        now = now_utc()
        async with self._db.transaction() as tx:
            deployment, revision = await _placed_revision(tx, listener, revision_id)
            if status not in statuses.NEXT.get(revision["status"], ()):
                raise Conflict(
                    f"Revision {revision_id} is {revision['status']}, not moving to {status}."
                )
            await tx.revisions.set_status([revision_id], status, now, message)
            if status == statuses.DEPLOYED:
                await tx.deployments.update(
                    deployment["id"], _deployed_values(deployment, revision_id, url, now)
                )

    async def append_logs(
        self, listener: dict[str, Any], revision_id: str, log_type: str, lines: list[dict[str, Any]]
    ) -> None:
        now = now_utc()
        async with self._db.transaction() as tx:
            await _placed_revision(tx, listener, revision_id)
            await tx.logs.append(
                [
                    {
                        "revision_id": revision_id,
                        "type": log_type,
                        "timestamp": line.get("timestamp") or now,
                        "level": line.get("level") or "INFO",
                        "message": line["message"],
                    }
                    for line in lines
                ]
            )

    async def heartbeat(self, listener: dict[str, Any], report: dict[str, Any]) -> None:
        values: dict[str, Any] = {"last_heartbeat_at": now_utc(), "heartbeat": report}
        if report.get("version"):
            values["version"] = report["version"]
        async with self._db.transaction() as tx:
            await tx.listeners.update(listener["id"], values)

    async def confirm_deleted(self, listener: dict[str, Any], deployment_id: str) -> None:
        """The listener stopped the deployment and removed its data: forget it."""
        async with self._db.transaction() as tx:
            found = await tx.deployments.get(listener["tenant_id"], deployment_id)
            if found is None or found["listener_id"] != listener["id"]:
                raise NotFound(f"Deployment ID {deployment_id} not found.")
            if found["status"] != statuses.AWAITING_DELETE:
                raise Conflict(f"Deployment ID {deployment_id} is not being deleted.")
            await tx.deployments.delete(deployment_id)
        self._uploads.remove_deployment(deployment_id)

    async def source_tarball(self, listener: dict[str, Any], revision_id: str) -> Path:
        async with self._db.transaction() as tx:
            _, revision = await _placed_revision(tx, listener, revision_id)
        object_path = revision["source_revision_config"].get("source_tarball_path")
        if not object_path:
            raise NotFound(f"Revision ID {revision_id} has no source tarball.")
        return self._uploads.path_of(object_path)

    async def server_report(self, token: str | None, report: dict[str, Any]) -> dict[str, Any]:
        """A self-reporting server's heartbeat: it appears as a deployment of its key's tenant,
        managed outside the listeners, created on its first report."""
        subject = self._verified_subject(token)
        now = now_utc()
        async with self._db.transaction() as tx:
            tenant = await tx.tenants.find(subject)
            if tenant is None:
                raise LicenseRefused(InvalidLicense(f"workspace {subject!r} does not exist"))
            found = await tx.deployments.find_by_name(tenant["id"], report["name"])
            if found is not None and found["managed_by"] != "self":
                raise Conflict(
                    f"Deployment {report['name']} is run by a listener; name this server "
                    "differently (STEAD_DEPLOYMENT_NAME)."
                )
            heartbeat = {
                "health": report["health"],
                "queue": report.get("queue"),
                "replica": report["replica"],
                "version": report["version"],
            }
            values = {
                "source_config": {"custom_url": report["url"]},
                "image_version": report["version"],
                "last_heartbeat_at": now,
                "heartbeat": heartbeat,
                "updated_at": now,
            }
            if found is None:
                found = _self_reported(tenant["id"], report["name"], self._box, now)
                await tx.deployments.insert({**found, **values})
            else:
                await tx.deployments.update(found["id"], values)
        return {"deployment_id": found["id"]}

    async def check_key(self, token: str | None) -> dict[str, Any]:
        """What an enrollment key holds, once this control plane has verified it and found its
        workspace; LicenseRefused otherwise."""
        try:
            found = verify_license(token or "", self._public_key, scope="data-plane")
        except LicenseError as exc:
            raise LicenseRefused(exc) from None
        async with self._db.transaction() as tx:
            if await tx.tenants.find(found.subject) is None:
                raise LicenseRefused(InvalidLicense(f"workspace {found.subject!r} does not exist"))
        return {"subject": found.subject, "expires_at": found.expires_at}

    def _verified_subject(self, token: str | None) -> str:
        try:
            return verify_license(token or "", self._public_key, scope="data-plane").subject
        except LicenseError as exc:
            raise LicenseRefused(exc) from None

    async def _desired(self, tx: ControlPlaneTransaction, row: dict[str, Any]) -> dict[str, Any]:
        revisions = {}
        for key in ("latest_revision_id", "active_revision_id"):
            if row[key]:
                revisions[key] = await tx.revisions.get(row["id"], row[key])
        return {
            "id": row["id"],
            "name": row["name"],
            "tenant_id": row["tenant_id"],
            "status": row["status"],
            "source_config": row["source_config"],
            "latest_revision": self._runnable(revisions.get("latest_revision_id")),
            "active_revision": self._runnable(revisions.get("active_revision_id")),
        }

    def _runnable(self, revision: dict[str, Any] | None) -> dict[str, Any] | None:
        if revision is None:
            return None
        return {
            "id": revision["id"],
            "status": revision["status"],
            "source": revision["source"],
            "source_revision_config": revision["source_revision_config"],
            "resource_spec": revision["resource_spec"] or {},
            "env": {s["name"]: s["value"] for s in self._box.open(revision["secrets"])},
        }


def _self_reported(tenant_id: str, name: str, box: SecretBox, now: datetime) -> dict[str, Any]:
    return {
        "id": new_random_id(),
        "tenant_id": tenant_id,
        "name": name,
        "source": "external_docker",
        "secrets": box.seal([]),
        "secret_references": [],
        "status": statuses.READY,
        "listener_id": None,
        "managed_by": "self",
        "latest_revision_id": None,
        "active_revision_id": None,
        "created_at": now,
    }


def _deployed_values(
    deployment: dict[str, Any], revision_id: str, url: str | None, now: datetime
) -> dict[str, Any]:
    values: dict[str, Any] = {"active_revision_id": revision_id, "updated_at": now}
    if url and deployment["source_config"].get("custom_url") != url:
        values["source_config"] = {**deployment["source_config"], "custom_url": url}
    return values


async def _placed_revision(
    tx: ControlPlaneTransaction, listener: dict[str, Any], revision_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A revision of a deployment on `listener`, with that deployment."""
    revision = await tx.revisions.find(revision_id)
    deployment = None
    if revision is not None:
        deployment = await tx.deployments.get(listener["tenant_id"], revision["deployment_id"])
    if (
        revision is not None
        and deployment is not None
        and deployment["listener_id"] == listener["id"]
    ):
        return deployment, revision
    raise NotFound(f"Revision ID {revision_id} not found on this listener.")
