"""Thread routes: the threads themselves and their state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from stead.api.authorization import on_thread
from stead.api.deps import AuthzDep, RuntimeDep, require_uuid
from stead.api.models import (
    CheckpointConfig,
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
from stead.api.openapi import errors, returns
from stead.api.resources import (
    Thread,
    ThreadSearchResults,
    ThreadsPruned,
    ThreadState,
    ThreadStateUpdated,
    ThreadStorage,
)
from stead.api.responses import json_response, no_content, page_response, selected
from stead.api.routing import DirectRoute
from stead.services.ttl import ThreadTTL, ttl_json

router = APIRouter(tags=["threads"], responses=errors(422), route_class=DirectRoute)

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


@router.post("/threads", responses={**returns(Thread), **errors(400, 409, 424)})
async def create_thread(body: ThreadCreate, rt: RuntimeDep, authz: AuthzDep) -> Response:
    if body.thread_id is not None:
        require_uuid(body.thread_id, "thread")
    fields = body.model_dump(exclude={"ttl"})
    fields["metadata"] = fields["metadata"] or {}
    access = await authz.check("threads", "create", fields)
    thread = await rt.threads.create(**fields, ttl=_ttl(body.ttl), access=access, user=authz.user)
    return json_response(thread_json(thread))


@router.post("/threads/search", responses=returns(ThreadSearchResults))
async def search_threads(body: ThreadSearch, rt: RuntimeDep, authz: AuthzDep) -> Response:
    filters = body.model_dump(exclude={"select", "extract"})
    access = await authz.check("threads", "search", filters)
    page = await rt.threads.search(access, **filters)
    rows = selected((thread_json(row) for row in page.rows), body.select, THREAD_FIELDS)
    if body.extract:
        for full, row in zip(page.rows, rows, strict=True):
            row["extracted"] = {alias: _at_path(full, path) for alias, path in body.extract.items()}
    return page_response(page, rows, body.offset)


@router.post("/threads/count", responses=returns(int))
async def count_threads(body: ThreadCount, rt: RuntimeDep, authz: AuthzDep) -> Response:
    filters = body.model_dump()
    access = await authz.check("threads", "search", filters)
    return json_response(await rt.threads.count(access, **filters))


@router.post("/threads/prune", responses=returns(ThreadsPruned))
async def prune_threads(body: ThreadPrune, rt: RuntimeDep, authz: AuthzDep) -> Response:
    thread_ids = [require_uuid(thread_id, "thread") for thread_id in body.thread_ids]
    access = await authz.check("threads", "delete", {"thread_id": None, "run_id": None})
    pruned = await rt.threads.prune(thread_ids, body.strategy, access)
    return json_response({"pruned_count": pruned})


@router.get("/threads/{thread_id}", responses={**returns(Thread), **errors(404)})
async def get_thread(
    thread_id: str, rt: RuntimeDep, authz: AuthzDep, include: str = ""
) -> Response:
    thread = await rt.threads.get(thread_id, await on_thread(authz, "read", thread_id))
    body = thread_json(thread)
    ttl = ttl_json(thread)
    if "ttl" in (part.strip() for part in include.split(",")) and ttl is not None:
        body["ttl"] = ttl
    return json_response(body)


@router.patch("/threads/{thread_id}", responses={**returns(Thread), **errors(404)})
async def patch_thread(
    thread_id: str, body: ThreadPatch, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    require_uuid(thread_id, "thread")
    value: dict[str, Any] = {"thread_id": thread_id, "metadata": body.metadata or {}}
    access = await authz.check("threads", "update", value)
    thread = await rt.threads.patch(thread_id, value["metadata"], _ttl(body.ttl), access)
    return json_response(thread_json(thread))


@router.delete("/threads/{thread_id}", status_code=204, responses=errors(404))
async def delete_thread(thread_id: str, rt: RuntimeDep, authz: AuthzDep) -> Response:
    access = await on_thread(authz, "delete", thread_id)
    await rt.threads.delete(thread_id, access)
    return no_content()


@router.get("/threads/{thread_id}/storage", responses={**returns(ThreadStorage), **errors(404)})
async def get_thread_storage(thread_id: str, rt: RuntimeDep, authz: AuthzDep) -> Response:
    return json_response(
        await rt.threads.storage(thread_id, await on_thread(authz, "read", thread_id))
    )


@router.post("/threads/{thread_id}/copy", responses={**returns(Thread), **errors(404)})
async def copy_thread(thread_id: str, rt: RuntimeDep, authz: AuthzDep) -> Response:
    copied = await rt.threads.copy(thread_id, await on_thread(authz, "read", thread_id))
    return json_response(thread_json(copied))


@router.get("/threads/{thread_id}/state", responses={**returns(ThreadState), **errors(404, 424)})
async def get_thread_state(
    thread_id: str, rt: RuntimeDep, authz: AuthzDep, subgraphs: bool = False
) -> Response:
    access = await on_thread(authz, "read", thread_id)
    return json_response(await rt.threads.state(thread_id, None, subgraphs, access, authz.user))


@router.get(
    "/threads/{thread_id}/state/{checkpoint_id}",
    responses={**returns(ThreadState), **errors(404, 424)},
)
async def get_thread_state_at(
    thread_id: str, checkpoint_id: str, rt: RuntimeDep, authz: AuthzDep, subgraphs: bool = False
) -> Response:
    access = await on_thread(authz, "read", thread_id)
    checkpoint = {"checkpoint_id": checkpoint_id}
    state = await rt.threads.state(thread_id, checkpoint, subgraphs, access, authz.user)
    return json_response(state)


@router.post(
    "/threads/{thread_id}/state/checkpoint",
    responses={**returns(ThreadState), **errors(404, 424)},
)
async def post_thread_state_at(
    thread_id: str, body: ThreadStateAtCheckpoint, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    access = await on_thread(authz, "read", thread_id)
    checkpoint = _checkpoint(body.checkpoint)
    state = await rt.threads.state(thread_id, checkpoint, body.subgraphs, access, authz.user)
    return json_response(state)


@router.post(
    "/threads/{thread_id}/state",
    responses={**returns(ThreadStateUpdated), **errors(400, 404, 409, 424)},
)
async def update_thread_state(
    thread_id: str, body: ThreadStateUpdate, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    access = await on_thread(authz, "update", thread_id)
    checkpoint = _checkpoint(body.checkpoint)
    if body.checkpoint_id:
        checkpoint = {**(checkpoint or {}), "checkpoint_id": body.checkpoint_id}
    result = await rt.threads.update_state(
        thread_id,
        values=body.values,
        as_node=body.as_node,
        checkpoint=checkpoint,
        access=access,
        user=authz.user,
    )
    return json_response(result)


@router.get(
    "/threads/{thread_id}/history",
    responses={**returns(list[ThreadState]), **errors(404, 424)},
)
async def get_thread_history(
    thread_id: str,
    rt: RuntimeDep,
    authz: AuthzDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    before: str | None = None,
) -> Response:
    history = await rt.threads.history(
        thread_id,
        limit=limit,
        before={"checkpoint_id": before} if before else None,
        metadata=None,
        checkpoint=None,
        access=await on_thread(authz, "read", thread_id),
        user=authz.user,
    )
    return json_response(history)


@router.post(
    "/threads/{thread_id}/history",
    responses={**returns(list[ThreadState]), **errors(404, 424)},
)
async def post_thread_history(
    thread_id: str, body: ThreadHistory, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    history = await rt.threads.history(
        thread_id,
        limit=body.limit,
        before=_before(body.before),
        metadata=body.metadata,
        checkpoint=_checkpoint(body.checkpoint),
        access=await on_thread(authz, "read", thread_id),
        user=authz.user,
    )
    return json_response(history)


def _ttl(ttl: ThreadTTLBody | float | None) -> ThreadTTL | None:
    """A TTL given as minutes, or as `{"ttl": minutes, "strategy": ...}` as the SDK sends it."""
    if ttl is None:
        return None
    if isinstance(ttl, ThreadTTLBody):
        return ThreadTTL(ttl.ttl, ttl.strategy)
    return ThreadTTL(ttl)


def _before(before: CheckpointConfig | CheckpointRef | str | None) -> dict[str, Any] | None:
    """History's `before`: a checkpoint id, a checkpoint, or a config holding one."""
    if isinstance(before, str):
        return {"checkpoint_id": before}
    if isinstance(before, CheckpointConfig):
        return _checkpoint(before.configurable)
    return _checkpoint(before)


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
