"""Cron routes: runs on a schedule, stateless (a new thread each time) or on one thread."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from stead.api.authorization import on_cron, using_assistant
from stead.api.deps import AuthzDep, RuntimeDep, require_uuid
from stead.api.models import CronCount, CronCreate, CronPatch, CronSearch
from stead.api.openapi import errors, returns
from stead.api.resources import Cron, CronSearchResults
from stead.api.responses import json_response, no_content, page_response, selected
from stead.api.routing import DirectRoute
from stead.auth.policy import Authorizer
from stead.runtime import Runtime

router = APIRouter(tags=["crons"], responses=errors(422), route_class=DirectRoute)

CRON_FIELDS = (
    "cron_id",
    "assistant_id",
    "thread_id",
    "user_id",
    "end_time",
    "schedule",
    "timezone",
    "payload",
    "next_run_date",
    "metadata",
    "on_run_completed",
    "enabled",
    "created_at",
    "updated_at",
)


@router.post("/runs/crons", responses={**returns(Cron), **errors(400, 404)})
async def create_cron(body: CronCreate, rt: RuntimeDep, authz: AuthzDep) -> Response:
    return json_response(cron_json(await _create(rt, authz, None, body)))


@router.post("/threads/{thread_id}/runs/crons", responses={**returns(Cron), **errors(400, 404)})
async def create_thread_cron(
    thread_id: str, body: CronCreate, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    cron = await _create(rt, authz, require_uuid(thread_id, "thread"), body)
    return json_response(cron_json(cron))


@router.post("/runs/crons/search", responses=returns(CronSearchResults))
async def search_crons(body: CronSearch, rt: RuntimeDep, authz: AuthzDep) -> Response:
    filters = body.model_dump(exclude={"select"})
    if body.thread_id is not None:
        require_uuid(body.thread_id, "thread")
    access = await authz.check("crons", "search", filters)
    page = await rt.crons.search(**filters, access=access)
    rows = selected((cron_json(row) for row in page.rows), body.select, CRON_FIELDS)
    return page_response(page, rows, body.offset)


@router.post("/runs/crons/count", responses=returns(int))
async def count_crons(body: CronCount, rt: RuntimeDep, authz: AuthzDep) -> Response:
    if body.thread_id is not None:
        require_uuid(body.thread_id, "thread")
    filters = body.model_dump()
    access = await authz.check("crons", "search", filters)
    return json_response(await rt.crons.count(**filters, access=access))


@router.get("/runs/crons/{cron_id}", responses={**returns(Cron), **errors(404)})
async def get_cron(cron_id: str, rt: RuntimeDep, authz: AuthzDep) -> Response:
    access = await on_cron(authz, "read", cron_id)
    return json_response(cron_json(await rt.crons.get(cron_id, access)))


@router.patch("/runs/crons/{cron_id}", responses={**returns(Cron), **errors(400, 404)})
async def patch_cron(
    cron_id: str, rt: RuntimeDep, authz: AuthzDep, body: CronPatch | None = None
) -> Response:
    changes = body.model_dump(exclude_unset=True) if body is not None else {}
    access = await on_cron(authz, "update", cron_id, changes)
    cron = await rt.crons.patch(cron_id, changes, access)
    return json_response(cron_json(cron))


@router.delete("/runs/crons/{cron_id}", status_code=204, responses=errors(404))
async def delete_cron(cron_id: str, rt: RuntimeDep, authz: AuthzDep) -> Response:
    await rt.crons.delete(cron_id, await on_cron(authz, "delete", cron_id))
    return no_content()


async def _create(
    rt: Runtime, authz: Authorizer, thread_id: str | None, body: CronCreate
) -> dict[str, Any]:
    """A cron runs as its creator, on a thread and an assistant they may use: `crons.create`,
    then `threads.create_run` for a thread cron and `assistants.read` for a user's assistant."""
    fields = body.model_dump(exclude_unset=True)
    fields["metadata"] = dict(fields.get("metadata") or {})
    user = authz.user
    value = {
        "payload": fields,
        "schedule": body.schedule,
        "cron_id": None,
        "thread_id": thread_id,
        "user_id": user.identity if user else None,
        "end_time": body.end_time,
        "metadata": fields["metadata"],
    }
    access = await authz.check("crons", "create", value)
    fields["metadata"] = value["metadata"]
    if thread_id is not None:
        run_value = {"thread_id": thread_id, "assistant_id": body.assistant_id, "metadata": {}}
        access = await authz.check("threads", "create_run", run_value, within=access)
    access = await using_assistant(authz, rt.assistants, body.assistant_id, within=access)
    return await rt.crons.create(thread_id, fields, auth_user=user, access=access)


def cron_json(cron: dict[str, Any]) -> dict[str, Any]:
    return {key: cron[key] for key in CRON_FIELDS}
