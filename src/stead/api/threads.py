"""Thread routes: the threads themselves and their state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from stead.api.deps import RuntimeDep, require_uuid
from stead.api.models import (
    CheckpointRef,
    ThreadCount,
    ThreadCreate,
    ThreadHistory,
    ThreadPatch,
    ThreadPrune,
    ThreadSearch,
    ThreadStateAtCheckpoint,
    ThreadStateUpdate,
    ThreadTTLBody,
)
from stead.api.openapi import errors
from stead.api.responses import json_response, no_content, page_response, selected
from stead.services.ttl import ThreadTTL, ttl_json

router = APIRouter(tags=["threads"], responses=errors(422))

THREAD_FIELDS = (
    "thread_id",
    "created_at",
    "updated_at",
    "state_updated_at",
    "metadata",
    "config",
    "status",
    "values",
    "interrupts",
    "error",
)


@router.post("/threads", responses=errors(400, 409, 424))
async def create_thread(body: ThreadCreate, rt: RuntimeDep) -> Response:
    if body.thread_id is not None:
        require_uuid(body.thread_id, "thread")
    thread = await rt.threads.create(**body.model_dump(exclude={"ttl"}), ttl=_ttl(body.ttl))
    return json_response(thread_json(thread))


@router.post("/threads/search")
async def search_threads(body: ThreadSearch, rt: RuntimeDep) -> Response:
    page = await rt.threads.search(**body.model_dump(exclude={"select", "extract"}))
    rows = selected((thread_json(row) for row in page.rows), body.select, THREAD_FIELDS)
    if body.extract:
        for full, row in zip(page.rows, rows, strict=True):
            row["extracted"] = {alias: _at_path(full, path) for alias, path in body.extract.items()}
    return page_response(page, rows, body.offset)


@router.post("/threads/count")
async def count_threads(body: ThreadCount, rt: RuntimeDep) -> Response:
    return json_response(await rt.threads.count(**body.model_dump()))


@router.post("/threads/prune")
async def prune_threads(body: ThreadPrune, rt: RuntimeDep) -> Response:
    thread_ids = [require_uuid(thread_id, "thread") for thread_id in body.thread_ids]
    return json_response({"pruned_count": await rt.threads.prune(thread_ids, body.strategy)})


@router.get("/threads/{thread_id}", responses=errors(404))
async def get_thread(thread_id: str, rt: RuntimeDep, include: str = "") -> Response:
    thread = await rt.threads.get(require_uuid(thread_id, "thread"))
    body = thread_json(thread)
    ttl = ttl_json(thread)
    if "ttl" in (part.strip() for part in include.split(",")) and ttl is not None:
        body["ttl"] = ttl
    return json_response(body)


@router.patch("/threads/{thread_id}", responses=errors(404))
async def patch_thread(thread_id: str, body: ThreadPatch, rt: RuntimeDep) -> Response:
    thread = await rt.threads.patch(
        require_uuid(thread_id, "thread"), body.metadata, _ttl(body.ttl)
    )
    return json_response(thread_json(thread))


@router.delete("/threads/{thread_id}", status_code=204, responses=errors(404))
async def delete_thread(thread_id: str, rt: RuntimeDep) -> Response:
    await rt.threads.delete(require_uuid(thread_id, "thread"))
    return no_content()


@router.get("/threads/{thread_id}/storage", responses=errors(404))
async def get_thread_storage(thread_id: str, rt: RuntimeDep) -> Response:
    return json_response(await rt.threads.storage(require_uuid(thread_id, "thread")))


@router.post("/threads/{thread_id}/copy", responses=errors(404))
async def copy_thread(thread_id: str, rt: RuntimeDep) -> Response:
    return json_response(thread_json(await rt.threads.copy(require_uuid(thread_id, "thread"))))


@router.get("/threads/{thread_id}/state", responses=errors(404, 424))
async def get_thread_state(thread_id: str, rt: RuntimeDep, subgraphs: bool = False) -> Response:
    state = await rt.threads.state(require_uuid(thread_id, "thread"), subgraphs=subgraphs)
    return json_response(state)


@router.get("/threads/{thread_id}/state/{checkpoint_id}", responses=errors(404, 424))
async def get_thread_state_at(
    thread_id: str, checkpoint_id: str, rt: RuntimeDep, subgraphs: bool = False
) -> Response:
    checkpoint = {"checkpoint_id": checkpoint_id}
    state = await rt.threads.state(require_uuid(thread_id, "thread"), checkpoint, subgraphs)
    return json_response(state)


@router.post("/threads/{thread_id}/state/checkpoint", responses=errors(404, 424))
async def post_thread_state_at(
    thread_id: str, body: ThreadStateAtCheckpoint, rt: RuntimeDep
) -> Response:
    state = await rt.threads.state(
        require_uuid(thread_id, "thread"), _checkpoint(body.checkpoint), body.subgraphs
    )
    return json_response(state)


@router.post("/threads/{thread_id}/state", responses=errors(400, 404, 409, 424))
async def update_thread_state(thread_id: str, body: ThreadStateUpdate, rt: RuntimeDep) -> Response:
    checkpoint = _checkpoint(body.checkpoint)
    if body.checkpoint_id:
        checkpoint = {**(checkpoint or {}), "checkpoint_id": body.checkpoint_id}
    result = await rt.threads.update_state(
        require_uuid(thread_id, "thread"),
        values=body.values,
        as_node=body.as_node,
        checkpoint=checkpoint,
    )
    return json_response(result)


@router.get("/threads/{thread_id}/history", responses=errors(404, 424))
async def get_thread_history(
    thread_id: str,
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: str | None = None,
) -> Response:
    history = await rt.threads.history(
        require_uuid(thread_id, "thread"),
        limit=limit,
        before={"checkpoint_id": before} if before else None,
        metadata=None,
        checkpoint=None,
    )
    return json_response(history)


@router.post("/threads/{thread_id}/history", responses=errors(404, 424))
async def post_thread_history(thread_id: str, body: ThreadHistory, rt: RuntimeDep) -> Response:
    before = body.before
    history = await rt.threads.history(
        require_uuid(thread_id, "thread"),
        limit=body.limit,
        before={"checkpoint_id": before} if isinstance(before, str) else _checkpoint(before),
        metadata=body.metadata,
        checkpoint=_checkpoint(body.checkpoint),
    )
    return json_response(history)


def _ttl(ttl: ThreadTTLBody | float | None) -> ThreadTTL | None:
    """A TTL given as minutes, or as `{"ttl": minutes, "strategy": ...}` as the SDK sends it."""
    if ttl is None:
        return None
    if isinstance(ttl, ThreadTTLBody):
        return ThreadTTL(ttl.ttl, ttl.strategy)
    return ThreadTTL(ttl)


def _checkpoint(ref: CheckpointRef | None) -> dict[str, Any] | None:
    return ref.model_dump(exclude_none=True) if ref is not None else None


def _at_path(row: dict[str, Any], path: str) -> Any:
    """The value at a dotted path such as `values.messages`, or None where it is missing."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def thread_json(thread: dict[str, Any]) -> dict[str, Any]:
    return {key: thread[key] for key in THREAD_FIELDS}
