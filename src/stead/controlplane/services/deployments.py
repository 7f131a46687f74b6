"""Deployments: create, read, change and delete, within the caller's tenant."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from stead.controlplane.services import statuses
from stead.controlplane.services.revisions import (
    SOURCE_REVISION_FIELDS,
    RevisionContent,
    changed_content,
    find_deployment,
    open_revision,
    require_runnable_source,
    revision_source,
)
from stead.controlplane.services.secrets import SecretBox, validate_secrets
from stead.controlplane.services.uploads import Uploads
from stead.controlplane.services.views import deployment_view, is_online
from stead.controlplane.storage import ControlPlaneDatabase, ControlPlaneTransaction
from stead.controlplane.storage.deployments import DeploymentFilter
from stead.errors import BadRequest, Conflict, NotFound
from stead.ids import new_random_id
from stead.services.assistants import now_utc

# Set once, at creation.
_IMMUTABLE_SOURCE_CONFIG = (
    "integration_id",
    "repo_url",
    "deployment_type",
    "listener_id",
    "listener_config",
)


class Deployments:
    def __init__(
        self,
        db: ControlPlaneDatabase,
        box: SecretBox,
        heartbeat_timeout: timedelta,
        uploads: Uploads,
    ) -> None:
        self._db = db
        self._box = box
        self._heartbeat_timeout = heartbeat_timeout
        self._uploads = uploads

    async def create(self, tenant_id: str, request: dict[str, Any]) -> dict[str, Any]:
        require_runnable_source(request["source"])
        secrets = validate_secrets(request.get("secrets") or [])
        now = now_utc()
        async with self._db.transaction() as tx:
            if await tx.deployments.find_by_name(tenant_id, request["name"]) is not None:
                raise Conflict(f"Deployment with name {request['name']} already exists.")
            source_config = _source_config(request)
            source_config["listener_id"] = await _placement(tx, tenant_id, source_config)
            record = {
                "id": new_random_id(),
                "tenant_id": tenant_id,
                "name": request["name"],
                "source": request["source"],
                "source_config": source_config,
                "secrets": self._box.seal(secrets),
                "secret_references": request.get("secret_references") or [],
                "status": statuses.READY,
                "listener_id": source_config["listener_id"],
                "managed_by": "listener",
                "latest_revision_id": None,
                "active_revision_id": None,
                "image_version": None,
                "created_at": now,
                "updated_at": now,
                "last_heartbeat_at": None,
                "heartbeat": None,
            }
            await tx.deployments.insert(record)
            revision_config = _given(request.get("source_revision_config"))
            if revision_config.get("image_uri") or revision_config.get("source_tarball_path"):
                content = RevisionContent(
                    record["source"],
                    revision_config,
                    source_config.get("resource_spec"),
                    record["secrets"],
                )
                await open_revision(tx, record["id"], content, now)
            return await self._view(tx, tenant_id, record["id"], now)

    async def get(self, tenant_id: str, deployment_id: str) -> dict[str, Any]:
        async with self._db.transaction() as tx:
            return await self._view(tx, tenant_id, deployment_id, now_utc())

    async def page(
        self, tenant_id: str, where: DeploymentFilter, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        """A page of the tenant's deployments, newest first. A status filter applies to the
        status shown (UNKNOWN is not stored), so it pages after filtering."""
        now = now_utc()
        by_status = where.statuses
        stored = DeploymentFilter(where.name, where.name_contains, (), where.ids)
        async with self._db.transaction() as tx:
            if not by_status:
                rows = await tx.deployments.select(tenant_id, stored, limit, offset)
                return [await self._view(tx, tenant_id, row["id"], now) for row in rows]
            rows = await tx.deployments.select(tenant_id, stored, limit=None, offset=0)
            views = [await self._view(tx, tenant_id, row["id"], now) for row in rows]
        return [view for view in views if view["status"] in by_status][offset : offset + limit]

    async def patch(
        self, tenant_id: str, deployment_id: str, change: dict[str, Any]
    ) -> dict[str, Any]:
        """Apply `change`; a new revision exactly when what the deployment runs changes."""
        if change.get("secrets") is not None:
            change = {**change, "secrets": validate_secrets(change["secrets"])}
        now = now_utc()
        async with self._db.transaction() as tx:
            deployment = await find_deployment(tx, tenant_id, deployment_id, lock=True)
            revision_source(deployment, change)
            source_config = _patched_source_config(deployment, change.get("source_config"))
            values: dict[str, Any] = {"source_config": source_config, "updated_at": now}
            if change.get("secret_references") is not None:
                values["secret_references"] = change["secret_references"]
            if _makes_revision(change):
                content = await changed_content(tx, deployment, change, self._box)
                await open_revision(tx, deployment_id, content, now)
                values["secrets"] = content.secrets
            await tx.deployments.update(deployment_id, values)
            return await self._view(tx, tenant_id, deployment_id, now)

    async def delete(self, tenant_id: str, deployment_id: str) -> None:
        """Gone at once when nothing runs it; otherwise AWAITING_DELETE until its listener has
        stopped it and removed its data."""
        async with self._db.transaction() as tx:
            deployment = await find_deployment(tx, tenant_id, deployment_id, lock=True)
            if deployment["managed_by"] == "listener" and deployment["latest_revision_id"]:
                await tx.deployments.update(
                    deployment_id, {"status": statuses.AWAITING_DELETE, "updated_at": now_utc()}
                )
                return
            await tx.deployments.delete(deployment_id)
        self._uploads.remove_deployment(deployment_id)

    async def delete_many(self, tenant_id: str, deployment_ids: list[str]) -> dict[str, Any]:
        deleted: list[str] = []
        failed: list[dict[str, str]] = []
        for deployment_id in deployment_ids:
            try:
                await self.delete(tenant_id, deployment_id)
                deleted.append(deployment_id)
            except NotFound as exc:
                failed.append({"id": deployment_id, "detail": exc.detail})
        return {"deleted_ids": deleted, "failed": failed}

    async def _view(
        self, tx: ControlPlaneTransaction, tenant_id: str, deployment_id: str, now: datetime
    ) -> dict[str, Any]:
        row = await find_deployment(tx, tenant_id, deployment_id)
        latest = None
        if row["latest_revision_id"]:
            latest = await tx.revisions.get(deployment_id, row["latest_revision_id"])
        return deployment_view(row, latest, self._box, await self._reporter_online(tx, row, now))

    async def _reporter_online(
        self, tx: ControlPlaneTransaction, row: dict[str, Any], now: datetime
    ) -> bool:
        if row["managed_by"] == "self":
            return is_online(row["last_heartbeat_at"], now, self._heartbeat_timeout)
        listener = await tx.listeners.get(row["tenant_id"], row["listener_id"])
        last = listener["last_heartbeat_at"] if listener else None
        return is_online(last, now, self._heartbeat_timeout)


def _given(config: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (config or {}).items() if v is not None}


def _source_config(request: dict[str, Any]) -> dict[str, Any]:
    config = _given(request.get("source_config"))
    if config.get("custom_url") and request["source"] != "external_docker":
        raise BadRequest("source_config.custom_url can be set only for external_docker.")
    return config


def _patched_source_config(
    deployment: dict[str, Any], change: dict[str, Any] | None
) -> dict[str, Any]:
    config = dict(deployment["source_config"])
    for key, value in _given(change).items():
        if key in _IMMUTABLE_SOURCE_CONFIG and value != config.get(key):
            raise BadRequest(f"source_config.{key} cannot be changed.")
        if key == "custom_url" and deployment["source"] != "external_docker":
            raise BadRequest("source_config.custom_url can be set only for external_docker.")
        config[key] = value
    return config


def _makes_revision(change: dict[str, Any]) -> bool:
    revision_config = change.get("source_revision_config") or {}
    return (
        any(revision_config.get(field) is not None for field in SOURCE_REVISION_FIELDS)
        or change.get("secrets") is not None
        or (change.get("source_config") or {}).get("resource_spec") is not None
    )


async def _placement(
    tx: ControlPlaneTransaction, tenant_id: str, source_config: dict[str, Any]
) -> str:
    """The listener that will run the deployment: the one named, else the tenant's only one."""
    named = source_config.get("listener_id")
    if named:
        if await tx.listeners.get(tenant_id, named) is None:
            raise NotFound(f"Listener ID {named} not found.")
        return str(named)
    listeners = await tx.listeners.select(tenant_id, limit=2, offset=0)
    if not listeners:
        raise BadRequest(
            "No listener is registered in this workspace: create one (POST /v2/listeners) and "
            "start 'stead listener' with its id."
        )
    if len(listeners) > 1:
        raise BadRequest(
            "'listener_id' is required: this workspace has several listeners; name one in "
            "source_config.listener_id."
        )
    return str(listeners[0]["id"])
