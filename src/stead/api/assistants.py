"""Assistant routes."""

from __future__ import annotations

from fastapi import APIRouter, Response

from stead.api.deps import RuntimeDep, require_uuid
from stead.api.models import (
    AssistantCount,
    AssistantCreate,
    AssistantLatest,
    AssistantPatch,
    AssistantSearch,
    AssistantVersions,
)
from stead.api.openapi import errors
from stead.api.responses import json_response, no_content, page_response, selected
from stead.errors import Unprocessable

router = APIRouter(tags=["assistants"], responses=errors(422))

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


@router.post("/assistants", responses=errors(400, 404, 409))
async def create_assistant(body: AssistantCreate, rt: RuntimeDep) -> Response:
    if body.assistant_id is not None:
        require_uuid(body.assistant_id, "assistant")
    return json_response(await rt.assistants.create(**body.model_dump()))


@router.post("/assistants/search")
async def search_assistants(body: AssistantSearch, rt: RuntimeDep) -> Response:
    page = await rt.assistants.search(**body.model_dump(exclude={"select"}))
    return page_response(page, selected(page.rows, body.select, ASSISTANT_FIELDS), body.offset)


@router.post("/assistants/count")
async def count_assistants(body: AssistantCount, rt: RuntimeDep) -> Response:
    return json_response(await rt.assistants.count(**body.model_dump()))


@router.get("/assistants/{assistant_id}", responses=errors(404))
async def get_assistant(assistant_id: str, rt: RuntimeDep) -> Response:
    return json_response(await rt.assistants.get(require_uuid(assistant_id, "assistant")))


@router.patch("/assistants/{assistant_id}", responses=errors(400, 404))
async def patch_assistant(assistant_id: str, body: AssistantPatch, rt: RuntimeDep) -> Response:
    changes = body.model_dump(exclude_unset=True)
    return json_response(
        await rt.assistants.patch(require_uuid(assistant_id, "assistant"), changes)
    )


@router.delete("/assistants/{assistant_id}", status_code=204, responses=errors(404))
async def delete_assistant(assistant_id: str, rt: RuntimeDep) -> Response:
    await rt.assistants.delete(require_uuid(assistant_id, "assistant"))
    return no_content()


@router.get("/assistants/{assistant_id}/graph", responses=errors(404, 424))
async def get_assistant_graph(assistant_id: str, rt: RuntimeDep, xray: str = "false") -> Response:
    return json_response(await rt.assistants.draw(assistant_id, _xray(xray)))


@router.get("/assistants/{assistant_id}/schemas", responses=errors(404, 424))
async def get_assistant_schemas(assistant_id: str, rt: RuntimeDep) -> Response:
    return json_response(await rt.assistants.schemas(require_uuid(assistant_id, "assistant")))


@router.get("/assistants/{assistant_id}/subgraphs", responses=errors(404, 424))
async def get_assistant_subgraphs(
    assistant_id: str, rt: RuntimeDep, recurse: bool = False
) -> Response:
    found = await rt.assistants.subgraphs(require_uuid(assistant_id, "assistant"), None, recurse)
    return json_response(found)


@router.get("/assistants/{assistant_id}/subgraphs/{namespace}", responses=errors(404, 424))
async def get_assistant_subgraphs_in(
    assistant_id: str, namespace: str, rt: RuntimeDep, recurse: bool = False
) -> Response:
    found = await rt.assistants.subgraphs(
        require_uuid(assistant_id, "assistant"), namespace, recurse
    )
    return json_response(found)


@router.post("/assistants/{assistant_id}/versions", responses=errors(404))
async def list_assistant_versions(
    assistant_id: str, body: AssistantVersions, rt: RuntimeDep
) -> Response:
    versions = await rt.assistants.versions(
        require_uuid(assistant_id, "assistant"), **body.model_dump()
    )
    return json_response(versions)


@router.post("/assistants/{assistant_id}/latest", responses=errors(404))
async def set_latest_assistant_version(
    assistant_id: str, body: AssistantLatest, rt: RuntimeDep
) -> Response:
    updated = await rt.assistants.set_latest(require_uuid(assistant_id, "assistant"), body.version)
    return json_response(updated)


def _xray(value: str) -> bool | int:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered.isdigit():
        return int(lowered)
    raise Unprocessable("xray must be true, false or a depth")
