"""Run routes, stateful (under a thread) and stateless (on a temporary thread)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response

from stead.api.deps import RuntimeDep, request_id, require_uuid
from stead.api.models import MAX_SQL_INTEGER, RunCancelMany, RunCreate
from stead.api.openapi import EVENT_STREAM, errors
from stead.api.responses import (
    json_response,
    keepalive_json_response,
    no_content,
    selected,
    sse_response,
)
from stead.errors import NotFound, Unprocessable
from stead.runtime import Runtime
from stead.services.run_shape import RUN_FIELDS, run_json
from stead.services.runs import RunRequest

router = APIRouter(tags=["runs"], responses=errors(422))

CancelAction = Literal["interrupt", "rollback"]


@router.post("/threads/{thread_id}/runs", responses=errors(400, 404, 409))
async def create_run(thread_id: str, body: RunCreate, request: Request, rt: RuntimeDep) -> Response:
    return await _create(rt, require_uuid(thread_id, "thread"), body, request)


@router.post("/runs", responses=errors(400, 404, 409))
async def create_stateless_run(body: RunCreate, request: Request, rt: RuntimeDep) -> Response:
    return await _create(rt, None, body, request)


@router.post("/runs/batch", responses=errors(400, 404, 409))
async def create_stateless_runs(
    body: list[RunCreate], request: Request, rt: RuntimeDep
) -> Response:
    created = [
        await rt.runs.create(None, _run_request(rt, item, request), request_id=request_id(request))
        for item in body
    ]
    return json_response([run_json(run) for run in created])


@router.post(
    "/threads/{thread_id}/runs/stream",
    response_class=Response,
    responses={**EVENT_STREAM, **errors(400, 404, 409)},
)
async def stream_run(thread_id: str, body: RunCreate, request: Request, rt: RuntimeDep) -> Response:
    return await _stream(rt, require_uuid(thread_id, "thread"), body, request)


@router.post(
    "/runs/stream", response_class=Response, responses={**EVENT_STREAM, **errors(400, 404, 409)}
)
async def stream_stateless_run(body: RunCreate, request: Request, rt: RuntimeDep) -> Response:
    return await _stream(rt, None, body, request)


@router.post("/threads/{thread_id}/runs/wait", responses=errors(400, 404, 409))
async def wait_run(thread_id: str, body: RunCreate, request: Request, rt: RuntimeDep) -> Response:
    return await _wait(rt, require_uuid(thread_id, "thread"), body, request)


@router.post("/runs/wait", responses=errors(400, 404, 409))
async def wait_stateless_run(body: RunCreate, request: Request, rt: RuntimeDep) -> Response:
    return await _wait(rt, None, body, request)


@router.get("/threads/{thread_id}/runs", responses=errors(404))
async def list_runs(
    thread_id: str,
    rt: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INTEGER)] = 0,
    status: str | None = None,
    select: Annotated[list[str] | None, Query()] = None,
) -> Response:
    runs = await rt.runs.list_for_thread(
        require_uuid(thread_id, "thread"), status=status, limit=limit, offset=offset
    )
    return json_response(selected((run_json(run) for run in runs), select, RUN_FIELDS))


@router.get("/threads/{thread_id}/runs/{run_id}", responses=errors(404))
async def get_run(thread_id: str, run_id: str, rt: RuntimeDep) -> Response:
    run = await rt.runs.get(require_uuid(thread_id, "thread"), require_uuid(run_id, "run"))
    return json_response(run_json(run))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204, responses=errors(404, 409))
async def delete_run(thread_id: str, run_id: str, rt: RuntimeDep) -> Response:
    await rt.runs.delete(require_uuid(thread_id, "thread"), require_uuid(run_id, "run"))
    return no_content()


@router.get("/threads/{thread_id}/runs/{run_id}/join", responses=errors(404))
async def join_run(
    thread_id: str, run_id: str, rt: RuntimeDep, cancel_on_disconnect: bool = False
) -> Response:
    stack = contextlib.AsyncExitStack()
    run, subscription = await stack.enter_async_context(
        rt.run_streams.join(require_uuid(thread_id, "thread"), require_uuid(run_id, "run"))
    )
    return keepalive_json_response(
        rt.runs.result(run, subscription),
        _locations(run, stateless=False, join="join"),
        _on_close(rt, run, stack, cancel_run=cancel_on_disconnect),
    )


@router.get(
    "/threads/{thread_id}/runs/{run_id}/stream",
    response_class=Response,
    responses={**EVENT_STREAM, **errors(404)},
)
async def join_run_stream(
    thread_id: str,
    run_id: str,
    rt: RuntimeDep,
    stream_mode: Annotated[list[str] | None, Query()] = None,
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    stack = contextlib.AsyncExitStack()
    run, subscription = await stack.enter_async_context(
        rt.run_streams.join(
            require_uuid(thread_id, "thread"), require_uuid(run_id, "run"), last_event_id
        )
    )
    events = rt.runs.events(run, subscription, _modes_param(stream_mode))
    return sse_response(
        events,
        _locations(run, stateless=False, join="stream"),
        _on_close(rt, run, stack, cancel_run=cancel_on_disconnect),
    )


@router.post(
    "/threads/{thread_id}/runs/{run_id}/cancel",
    response_class=Response,
    status_code=202,
    responses={
        **errors(404),
        200: {
            "description": "With wait=true: the run's output once it stopped",
            "content": {"application/json": {"schema": {}}},
        },
    },
)
async def cancel_run(
    thread_id: str,
    run_id: str,
    rt: RuntimeDep,
    wait: bool = False,
    action: CancelAction = "interrupt",
) -> Response:
    result = await rt.run_streams.cancel(
        require_uuid(thread_id, "thread"), require_uuid(run_id, "run"), action, wait
    )
    return json_response(result if result is not None else {}) if wait else no_content(202)


@router.post("/runs/cancel", status_code=204, responses=errors(404))
async def cancel_runs(
    body: RunCancelMany, rt: RuntimeDep, action: CancelAction = "interrupt"
) -> Response:
    if body.status is not None and (body.run_ids or body.thread_id):
        raise Unprocessable("Provide either status, or thread_id and run_ids, not both")
    if body.status is None and body.run_ids is None:
        raise Unprocessable("Provide status, or thread_id and run_ids")
    runs = await rt.runs.active_runs(
        thread_id=body.thread_id, run_ids=body.run_ids, status=body.status
    )
    if not runs:
        raise NotFound("No runs found to cancel.")
    await rt.runs.cancel(runs, action)
    return no_content()


async def _create(
    rt: Runtime, thread_id: str | None, body: RunCreate, request: Request
) -> Response:
    run = await rt.runs.create(
        thread_id, _run_request(rt, body, request), request_id=request_id(request)
    )
    return json_response(
        run_json(run), headers={"Content-Location": _run_path(run, thread_id is None)}
    )


async def _stream(
    rt: Runtime, thread_id: str | None, body: RunCreate, request: Request
) -> Response:
    stack = contextlib.AsyncExitStack()
    run, subscription = await stack.enter_async_context(
        rt.run_streams.create_and_subscribe(
            thread_id, _run_request(rt, body, request), request_id(request)
        )
    )
    return sse_response(
        rt.runs.events(run, subscription),
        _locations(run, stateless=thread_id is None, join="stream"),
        _on_close(rt, run, stack, cancel_run=body.on_disconnect == "cancel"),
    )


async def _wait(rt: Runtime, thread_id: str | None, body: RunCreate, request: Request) -> Response:
    stack = contextlib.AsyncExitStack()
    run, subscription = await stack.enter_async_context(
        rt.run_streams.create_and_subscribe(
            thread_id, _run_request(rt, body, request), request_id(request)
        )
    )
    return keepalive_json_response(
        rt.runs.result(run, subscription),
        _locations(run, stateless=False, join="join"),
        _on_close(rt, run, stack, cancel_run=body.on_disconnect == "cancel"),
    )


def _on_close(
    rt: Runtime, run: dict[str, Any], stack: contextlib.AsyncExitStack, *, cancel_run: bool
) -> Any:
    async def close() -> None:
        try:
            if cancel_run:
                await rt.run_streams.cancel_if_active(run["run_id"])
        finally:
            await stack.aclose()

    return close


def _run_path(run: dict[str, Any], stateless: bool) -> str:
    if stateless:
        return f"/runs/{run['run_id']}"
    return f"/threads/{run['thread_id']}/runs/{run['run_id']}"


def _locations(run: dict[str, Any], *, stateless: bool, join: str) -> dict[str, str]:
    if join == "join":
        location = f"/threads/{run['thread_id']}/runs/{run['run_id']}/join"
    else:
        location = f"{_run_path(run, stateless)}/stream"
    return {"Location": location, "Content-Location": _run_path(run, stateless)}


def _modes_param(stream_mode: list[str] | None) -> list[str] | None:
    if not stream_mode:
        return None
    modes: list[str] = []
    # The SDK sends `stream_mode=` (empty) when the caller gave none: that means no filter.
    for value in filter(None, stream_mode):
        parsed = json.loads(value) if value.startswith("[") else value
        modes.extend(parsed if isinstance(parsed, list) else [parsed])
    return ["messages" if mode == "messages-tuple" else mode for mode in modes] or None


def _run_request(rt: Runtime, body: RunCreate, request: Request) -> RunRequest:
    """The body as a run request, with the headers `http.configurable_headers` copies."""
    headers = rt.configurable_headers.select(request.headers)
    return dataclasses.replace(to_run_request(body), configurable_headers=headers)


def to_run_request(body: RunCreate) -> RunRequest:
    fields = body.model_dump(exclude={"on_disconnect", "strict_resume", "langsmith_tracer"})
    if isinstance(fields["stream_mode"], str):
        fields["stream_mode"] = [fields["stream_mode"]]
    if body.command is not None:
        fields["command"] = body.command.model_dump(exclude_none=True)
    if body.checkpoint is not None:
        fields["checkpoint"] = body.checkpoint.model_dump(exclude_none=True)
    return RunRequest(**fields)
