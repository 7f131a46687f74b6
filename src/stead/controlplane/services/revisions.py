"""Revisions: one per change of what a deployment runs (its source, secrets or resources).
Revisions never change what they hold; a rollback is a new revision copied from an older one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stead.controlplane.services import statuses
from stead.controlplane.services.secrets import SecretBox
from stead.controlplane.services.views import revision_view
from stead.controlplane.storage import ControlPlaneDatabase, ControlPlaneTransaction
from stead.errors import BadRequest, NotFound
from stead.ids import new_time_ordered_id
from stead.services.assistants import now_utc

# Sources a listener can run; the others need a hosted build service or a GitHub integration.
RUNNABLE_SOURCES = ("external_docker", "internal_source")
_UNSUPPORTED_SOURCES = {
    "github": "Deploying from GitHub is not supported by Stead: upload the source with "
    "'langgraph deploy --remote' (internal_source) or run an image (external_docker).",
    "internal_docker": "Stead has no managed registry: push the image to your own registry "
    "and deploy it as external_docker (langgraph deploy --push-to ...).",
}
SOURCE_REVISION_FIELDS = ("repo_ref", "langgraph_config_path", "image_uri", "source_tarball_path")


@dataclass(frozen=True)
class RevisionContent:
    """What a revision runs."""

    source: str
    source_revision_config: dict[str, Any]
    resource_spec: dict[str, Any] | None
    secrets: str  # sealed


def require_runnable_source(source: str) -> None:
    if source in _UNSUPPORTED_SOURCES:
        raise BadRequest(_UNSUPPORTED_SOURCES[source])
    if source not in RUNNABLE_SOURCES:
        raise BadRequest(f"Unknown source {source!r}.")


async def validate_content(
    tx: ControlPlaneTransaction, deployment_id: str, content: RevisionContent
) -> None:
    config = content.source_revision_config
    if content.source == "external_docker":
        if not config.get("image_uri"):
            raise BadRequest("source_revision_config.image_uri is required for external_docker.")
        if config.get("langgraph_config_path") is not None:
            raise BadRequest("langgraph_config_path must be null for external_docker.")
        return
    tarball = config.get("source_tarball_path")
    if not tarball or not config.get("langgraph_config_path"):
        raise BadRequest(
            "source_revision_config.source_tarball_path and langgraph_config_path are required "
            "for internal_source."
        )
    upload = await tx.uploads.get(deployment_id, tarball)
    if upload is None or upload.get("received_at") is None:
        raise BadRequest(
            "source_tarball_path must be the object_path of a tarball uploaded through "
            "POST /v2/deployments/{deployment_id}/upload-url."
        )


async def open_revision(
    tx: ControlPlaneTransaction, deployment_id: str, content: RevisionContent, now: datetime
) -> dict[str, Any]:
    """Queue a new revision; those older that had not finished rolling out are skipped."""
    await validate_content(tx, deployment_id, content)
    revision_id = new_time_ordered_id()
    unfinished = await tx.revisions.ids_in_status(deployment_id, statuses.IN_PROGRESS)
    await tx.revisions.set_status(
        unfinished, statuses.SKIPPED, now, f"superseded by revision {revision_id}"
    )
    record = {
        "id": revision_id,
        "deployment_id": deployment_id,
        "source": content.source,
        "source_revision_config": content.source_revision_config,
        "resource_spec": content.resource_spec,
        "secrets": content.secrets,
        "status": statuses.QUEUED,
        "status_message": None,
        "created_at": now,
        "updated_at": now,
    }
    await tx.revisions.insert(record)
    await tx.deployments.update(
        deployment_id, {"latest_revision_id": revision_id, "updated_at": now}
    )
    return record


class Revisions:
    def __init__(self, db: ControlPlaneDatabase, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def page(
        self, tenant_id: str, deployment_id: str, status: tuple[str, ...], limit: int, offset: int
    ) -> list[dict[str, Any]]:
        async with self._db.transaction() as tx:
            await find_deployment(tx, tenant_id, deployment_id)
            rows = await tx.revisions.select(deployment_id, status, limit, offset)
        return [revision_view(row) for row in rows]

    async def get(self, tenant_id: str, deployment_id: str, revision_id: str) -> dict[str, Any]:
        async with self._db.transaction() as tx:
            return revision_view(await _revision(tx, tenant_id, deployment_id, revision_id))

    async def create(
        self, tenant_id: str, deployment_id: str, change: dict[str, Any]
    ) -> dict[str, Any]:
        """`POST .../revisions`: unlike PATCH, always a new revision."""
        async with self._db.transaction() as tx:
            deployment = await find_deployment(tx, tenant_id, deployment_id, lock=True)
            content = await changed_content(tx, deployment, change, self._box)
            return revision_view(await open_revision(tx, deployment_id, content, now_utc()))

    async def redeploy(self, tenant_id: str, deployment_id: str, revision_id: str) -> None:
        """Roll back (or forward) to what `revision_id` ran, as a new revision."""
        async with self._db.transaction() as tx:
            await find_deployment(tx, tenant_id, deployment_id, lock=True)
            old = await _revision(tx, tenant_id, deployment_id, revision_id)
            content = RevisionContent(
                old["source"], old["source_revision_config"], old["resource_spec"], old["secrets"]
            )
            await open_revision(tx, deployment_id, content, now_utc())
            await tx.deployments.update(deployment_id, {"secrets": old["secrets"]})

    async def logs(
        self,
        tenant_id: str,
        deployment_id: str,
        revision_id: str,
        log_type: str,
        *,
        order: str = "asc",
        limit: int = 50,
        offset: str | None = None,
        level: str | None = None,
        query: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
    ) -> dict[str, Any]:
        """A page of log lines; `next_offset` is the cursor of the next page, None at the end."""
        after_id = _cursor(offset)
        async with self._db.transaction() as tx:
            await _revision(tx, tenant_id, deployment_id, revision_id)
            rows = await tx.logs.page(
                revision_id,
                log_type,
                descending=order == "desc",
                after_id=after_id,
                limit=limit,
                level=level,
                query=query,
                start_time=start_time,
                end_time=end_time,
            )
        logs = [
            {
                "id": str(row["id"]),
                "timestamp": row["timestamp"],
                "level": row["level"],
                "message": row["message"],
            }
            for row in rows
        ]
        return {"logs": logs, "next_offset": logs[-1]["id"] if len(logs) == limit else None}


async def changed_content(
    tx: ControlPlaneTransaction,
    deployment: dict[str, Any],
    change: dict[str, Any],
    box: SecretBox,
) -> RevisionContent:
    """The latest revision's content with `change` (a PATCH or POST .../revisions body) on top."""
    latest = None
    if deployment["latest_revision_id"]:
        latest = await tx.revisions.get(deployment["id"], deployment["latest_revision_id"])
    source = revision_source(deployment, change)
    config = {k: v for k, v in ((latest or {}).get("source_revision_config") or {}).items() if v}
    config.update({k: v for k, v in (change.get("source_revision_config") or {}).items() if v})
    resource_spec = (change.get("source_config") or {}).get("resource_spec")
    if resource_spec is None:
        resource_spec = deployment["source_config"].get("resource_spec")
    secrets = box.seal(change["secrets"]) if change.get("secrets") is not None else None
    return RevisionContent(source, config, resource_spec, secrets or deployment["secrets"])


def revision_source(deployment: dict[str, Any], change: dict[str, Any]) -> str:
    """The source a change's revision runs: the deployment's, which cannot change."""
    source = change.get("revision_source") or deployment["source"]
    require_runnable_source(source)
    if source != deployment["source"]:
        raise BadRequest(
            f"revision_source {source!r} differs from the deployment's source "
            f"{deployment['source']!r}, which cannot change."
        )
    return str(source)


def _cursor(offset: str | None) -> int | None:
    if offset in (None, ""):
        return None
    if not offset.isdigit():
        raise BadRequest("offset must be the next_offset of a previous page.")
    return int(offset)


async def find_deployment(
    tx: ControlPlaneTransaction, tenant_id: str, deployment_id: str, *, lock: bool = False
) -> dict[str, Any]:
    get = tx.deployments.get_for_update if lock else tx.deployments.get
    found = await get(tenant_id, deployment_id)
    if found is None:
        raise NotFound(f"Deployment ID {deployment_id} not found.")
    return found


async def _revision(
    tx: ControlPlaneTransaction, tenant_id: str, deployment_id: str, revision_id: str
) -> dict[str, Any]:
    await find_deployment(tx, tenant_id, deployment_id)
    found = await tx.revisions.get(deployment_id, revision_id)
    if found is None:
        raise NotFound(f"Revision ID {revision_id} not found.")
    return found
