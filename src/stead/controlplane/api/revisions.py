"""/v2/deployments/{id}/revisions: history, rollback and logs; and the legacy log readers under
/v1/projects that `langgraph deploy` calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query

from stead.controlplane.api.deployments import csv
from stead.controlplane.api.deps import CallerTenant, Services
from stead.controlplane.api.models import DeploymentPatch, LogQuery, dumped
from stead.controlplane.services import statuses
from stead.controlplane.services.tenants import Tenant
from stead.errors import NotFound

router = APIRouter()

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


@router.get("/v2/deployments/{deployment_id}/revisions")
async def list_revisions(
    deployment_id: str,
    services: Services,
    tenant: CallerTenant,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0),
    status: str | None = None,
) -> dict[str, Any]:
    wanted = csv(status, statuses.REVISION_STATUSES, "status")
    resources = await services.revisions.page(tenant.id, deployment_id, wanted, limit, offset)
    return {"resources": resources, "offset": offset + len(resources)}


@router.post("/v2/deployments/{deployment_id}/revisions", status_code=201)
async def create_revision(
    deployment_id: str, body: DeploymentPatch, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    return await services.revisions.create(tenant.id, deployment_id, dumped(body))


@router.get("/v2/deployments/{deployment_id}/revisions/{revision_id}")
async def get_revision(
    deployment_id: str, revision_id: str, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    return await services.revisions.get(tenant.id, deployment_id, revision_id)


@router.post("/v2/deployments/{deployment_id}/revisions/{revision_id}/redeploy")
async def redeploy(
    deployment_id: str, revision_id: str, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    await services.revisions.redeploy(tenant.id, deployment_id, revision_id)
    return await services.deployments.get(tenant.id, deployment_id)


@router.get("/v2/deployments/{deployment_id}/revisions/{revision_id}/logs")
async def revision_logs(
    deployment_id: str,
    revision_id: str,
    services: Services,
    tenant: CallerTenant,
    type: Literal["build", "deploy"],
    order: Literal["asc", "desc"] = "asc",
    limit: int = Query(50, ge=1, le=1000),
    offset: str | None = None,
    level: Level | None = None,
    query: str | None = None,
    start_time: datetime | None = None,
    end_time: datetime | None = None,
) -> dict[str, Any]:
    body = LogQuery(
        order=order,
        limit=limit,
        offset=offset,
        level=level,
        query=query,
        start_time=start_time,
        end_time=end_time,
    )
    return await _logs(services, tenant, deployment_id, revision_id, type, body)


@router.post("/v1/projects/{deployment_id}/revisions/{revision_id}/build_logs")
async def legacy_build_logs(
    deployment_id: str, revision_id: str, body: LogQuery, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    return await _logs(services, tenant, deployment_id, revision_id, "build", body)


@router.post("/v1/projects/{deployment_id}/revisions/{revision_id}/deploy_logs")
async def legacy_revision_deploy_logs(
    deployment_id: str, revision_id: str, body: LogQuery, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    return await _logs(services, tenant, deployment_id, revision_id, "deploy", body)


@router.post("/v1/projects/{deployment_id}/deploy_logs")
async def legacy_deploy_logs(
    deployment_id: str, body: LogQuery, services: Services, tenant: CallerTenant
) -> dict[str, Any]:
    """The deploy logs of the revision serving now (else the latest)."""
    deployment = await services.deployments.get(tenant.id, deployment_id)
    revision_id = deployment["active_revision_id"] or deployment["latest_revision_id"]
    if revision_id is None:
        raise NotFound(f"Deployment ID {deployment_id} has no revision yet.")
    return await _logs(services, tenant, deployment_id, revision_id, "deploy", body)


async def _logs(
    services: Services,
    tenant: Tenant,
    deployment_id: str,
    revision_id: str,
    log_type: str,
    body: LogQuery,
) -> dict[str, Any]:
    return await services.revisions.logs(
        tenant.id, deployment_id, revision_id, log_type, **body.model_dump()
    )
