"""Cron routes: runs on a schedule, stateless (a new thread each time) or on one thread."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from stead.api.deps import RuntimeDep, require_uuid
from stead.api.models import CronCount, CronCreate, CronPatch, CronSearch
from stead.api.openapi import errors
from stead.api.responses import json_response, no_content, page_response, selected

router = APIRouter(tags=["crons"], responses=errors(422))

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


@router.post("/runs/crons", responses=errors(400, 404))
async def create_cron(body: CronCreate, rt: RuntimeDep) -> Response:
    cron = await rt.crons.create(None, body.model_dump(exclude_unset=True))
    return json_response(cron_json(cron))


@router.post("/threads/{thread_id}/runs/crons", responses=errors(400, 404))
async def create_thread_cron(thread_id: str, body: CronCreate, rt: RuntimeDep) -> Response:
    cron = await rt.crons.create(
        require_uuid(thread_id, "thread"), body.model_dump(exclude_unset=True)
    )
    return json_response(cron_json(cron))


@router.post("/runs/crons/search")
async def search_crons(body: CronSearch, rt: RuntimeDep) -> Response:
    filters = body.model_dump(exclude={"select"})
    if body.thread_id is not None:
        require_uuid(body.thread_id, "thread")
    page = await rt.crons.search(**filters)
    rows = selected((cron_json(row) for row in page.rows), body.select, CRON_FIELDS)
    return page_response(page, rows, body.offset)


@router.post("/runs/crons/count")
async def count_crons(body: CronCount, rt: RuntimeDep) -> Response:
    if body.thread_id is not None:
        require_uuid(body.thread_id, "thread")
    return json_response(await rt.crons.count(**body.model_dump()))


@router.get("/runs/crons/{cron_id}", responses=errors(404))
async def get_cron(cron_id: str, rt: RuntimeDep) -> Response:
    return json_response(cron_json(await rt.crons.get(require_uuid(cron_id, "cron"))))


@router.patch("/runs/crons/{cron_id}", responses=errors(400, 404))
async def patch_cron(cron_id: str, rt: RuntimeDep, body: CronPatch | None = None) -> Response:
    changes = body.model_dump(exclude_unset=True) if body is not None else {}
    cron = await rt.crons.patch(require_uuid(cron_id, "cron"), changes)
    return json_response(cron_json(cron))


@router.delete("/runs/crons/{cron_id}", status_code=204, responses=errors(404))
async def delete_cron(cron_id: str, rt: RuntimeDep) -> Response:
    await rt.crons.delete(require_uuid(cron_id, "cron"))
    return no_content()


def cron_json(cron: dict[str, Any]) -> dict[str, Any]:
    return {key: cron[key] for key in CRON_FIELDS}
