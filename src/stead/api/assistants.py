"""Assistant routes."""

from __future__ import annotations

from fastapi import APIRouter, Response

from stead.api.authorization import on_assistant
from stead.api.deps import AuthzDep, RuntimeDep, require_uuid
from stead.api.models import (
    AssistantCount,
    AssistantCreate,
    AssistantLatest,
    AssistantPatch,
    AssistantSearch,
    AssistantVersions,
)
from stead.api.openapi import errors, returns
from stead.api.resources import (
    Assistant,
    AssistantSchemas,
    AssistantSearchResults,
    AssistantVersion,
    GraphDrawing,
    GraphSchemas,
)
from stead.api.responses import json_response, no_content, page_response, selected
from stead.api.routing import DirectRoute
from stead.errors import Unprocessable

router = APIRouter(tags=["assistants"], responses=errors(422), route_class=DirectRoute)

ASSISTANT_FIELDS = (
    "assistant_id",
    "graph_id",
    "config",
    "context",
    "metadata",
    "name",
    "description",
    "version",
    "created_at",
    "updated_at",
)


@router.post("/assistants", responses={**returns(Assistant), **errors(400, 404, 409)})
async def create_assistant(body: AssistantCreate, rt: RuntimeDep, authz: AuthzDep) -> Response:
    if body.assistant_id is not None:
        require_uuid(body.assistant_id, "assistant")
    fields = body.model_dump()
    fields["metadata"] = fields["metadata"] or {}
    access = await authz.check("assistants", "create", fields)
    return json_response(await rt.assistants.create(**fields, access=access))


@router.post("/assistants/search", responses=returns(AssistantSearchResults))
async def search_assistants(body: AssistantSearch, rt: RuntimeDep, authz: AuthzDep) -> Response:
    filters = body.model_dump(exclude={"select"})
    access = await authz.check("assistants", "search", filters)
    page = await rt.assistants.search(access, **filters)
    return page_response(page, selected(page.rows, body.select, ASSISTANT_FIELDS), body.offset)


@router.post("/assistants/count", responses=returns(int))
async def count_assistants(body: AssistantCount, rt: RuntimeDep, authz: AuthzDep) -> Response:
    filters = body.model_dump()
    access = await authz.check("assistants", "search", filters)
    return json_response(await rt.assistants.count(access, **filters))


@router.get("/assistants/{assistant_id}", responses={**returns(Assistant), **errors(404)})
async def get_assistant(assistant_id: str, rt: RuntimeDep, authz: AuthzDep) -> Response:
    access = await on_assistant(authz, "read", assistant_id)
    return json_response(await rt.assistants.get(assistant_id, access))


@router.patch("/assistants/{assistant_id}", responses={**returns(Assistant), **errors(400, 404)})
async def patch_assistant(
    assistant_id: str, body: AssistantPatch, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    require_uuid(assistant_id, "assistant")
    changes = body.model_dump(exclude_unset=True)
    access = await authz.check("assistants", "update", {"assistant_id": assistant_id, **changes})
    return json_response(await rt.assistants.patch(assistant_id, changes, access))


@router.delete("/assistants/{assistant_id}", status_code=204, responses=errors(404))
async def delete_assistant(assistant_id: str, rt: RuntimeDep, authz: AuthzDep) -> Response:
    access = await on_assistant(authz, "delete", assistant_id)
    await rt.assistants.delete(assistant_id, access)
    return no_content()


@router.get(
    "/assistants/{assistant_id}/graph", responses={**returns(GraphDrawing), **errors(404, 424)}
)
async def get_assistant_graph(
    assistant_id: str, rt: RuntimeDep, authz: AuthzDep, xray: str = "false"
) -> Response:
    # A graph name stands for its system assistant here, as in run bodies.
    value = {"assistant_id": assistant_id, "metadata": {}}
    access = await authz.check("assistants", "read", value)
    drawing = await rt.assistants.draw(assistant_id, _xray(xray), access, authz.user)
    return json_response(drawing)


@router.get(
    "/assistants/{assistant_id}/schemas",
    responses={**returns(AssistantSchemas), **errors(404, 424)},
)
async def get_assistant_schemas(assistant_id: str, rt: RuntimeDep, authz: AuthzDep) -> Response:
    access = await on_assistant(authz, "read", assistant_id)
    return json_response(await rt.assistants.schemas(assistant_id, access, authz.user))


@router.get(
    "/assistants/{assistant_id}/subgraphs",
    responses={**returns(dict[str, GraphSchemas]), **errors(404, 424)},
)
async def get_assistant_subgraphs(
    assistant_id: str, rt: RuntimeDep, authz: AuthzDep, recurse: bool = False
) -> Response:
    access = await on_assistant(authz, "read", assistant_id)
    subgraphs = await rt.assistants.subgraphs(assistant_id, None, recurse, access, authz.user)
    return json_response(subgraphs)


@router.get(
    "/assistants/{assistant_id}/subgraphs/{namespace}",
    responses={**returns(dict[str, GraphSchemas]), **errors(404, 424)},
)
async def get_assistant_subgraphs_in(
    assistant_id: str, namespace: str, rt: RuntimeDep, authz: AuthzDep, recurse: bool = False
) -> Response:
    access = await on_assistant(authz, "read", assistant_id)
    subgraphs = await rt.assistants.subgraphs(assistant_id, namespace, recurse, access, authz.user)
    return json_response(subgraphs)


@router.post(
    "/assistants/{assistant_id}/versions",
    responses={**returns(list[AssistantVersion]), **errors(404)},
)
async def list_assistant_versions(
    assistant_id: str, body: AssistantVersions, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    access = await on_assistant(authz, "read", assistant_id)
    versions = await rt.assistants.versions(assistant_id, **body.model_dump(), access=access)
    return json_response(versions)


@router.post("/assistants/{assistant_id}/latest", responses={**returns(Assistant), **errors(404)})
async def set_latest_assistant_version(
    assistant_id: str, body: AssistantLatest, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    require_uuid(assistant_id, "assistant")
    value = {"assistant_id": assistant_id, "version": body.version}
    access = await authz.check("assistants", "update", value)
    updated = await rt.assistants.set_latest(assistant_id, body.version, access)
    return json_response(updated)


def _xray(value: str) -> bool | int:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered.isdigit():
        return int(lowered)
    raise Unprocessable("xray must be true, false or a depth")
