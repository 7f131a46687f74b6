"""Run routes, stateful (under a thread) and stateless (on a temporary thread)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.requests import HTTPConnection

from stead.api.authorization import on_thread, using_assistant
from stead.api.deps import AuthzDep, RuntimeDep, request_id, require_uuid
from stead.api.models import MAX_SQL_INTEGER, RunCancelMany, RunCreate
from stead.api.openapi import EVENT_STREAM, errors, returns
from stead.api.request_bodies import BodyReleasingRoute, release_body
from stead.api.resources import Run, RunListResults
from stead.api.responses import (
    json_response,
    keepalive_json_response,
    no_content,
    selected,
    sse_response,
)
from stead.auth.policy import Authorizer
from stead.errors import NotFound, Unprocessable
from stead.runtime import Runtime
from stead.services.run_shape import RUN_FIELDS, run_json
from stead.services.runs import RunRequest
from stead.shutdown import server_shutdown
from stead.storage.access import Access

router = APIRouter(tags=["runs"], responses=errors(422), route_class=BodyReleasingRoute)

CancelAction = Literal["interrupt", "rollback"]


@router.post("/threads/{thread_id}/runs", responses={**returns(Run), **errors(400, 404, 409)})
async def create_run(
    thread_id: str, body: RunCreate, request: Request, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    return await _create(rt, authz, require_uuid(thread_id, "thread"), body, request)


@router.post("/runs", responses={**returns(Run), **errors(400, 404, 409)})
async def create_stateless_run(
    body: RunCreate, request: Request, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    return await _create(rt, authz, None, body, request)


@router.post("/runs/batch", responses={**returns(list[Run]), **errors(400, 404, 409)})
async def create_stateless_runs(
    body: list[RunCreate], request: Request, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    release_body(request)
    created = []
    for item in body:
        run_request, access = await authorized_run(rt, authz, None, item, request)
        created.append(
            await rt.runs.create(None, run_request, request_id=request_id(request), access=access)
        )
    return json_response([run_json(run) for run in created])


@router.post(
    "/threads/{thread_id}/runs/stream",
    response_class=Response,
    responses={**EVENT_STREAM, **errors(400, 404, 409)},
)
async def stream_run(
    thread_id: str, body: RunCreate, request: Request, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    return await _stream(rt, authz, require_uuid(thread_id, "thread"), body, request)


@router.post(
    "/runs/stream", response_class=Response, responses={**EVENT_STREAM, **errors(400, 404, 409)}
)
async def stream_stateless_run(
    body: RunCreate, request: Request, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    return await _stream(rt, authz, None, body, request)


@router.post("/threads/{thread_id}/runs/wait", responses=errors(400, 404, 409))
async def wait_run(
    thread_id: str, body: RunCreate, request: Request, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    return await _wait(rt, authz, require_uuid(thread_id, "thread"), body, request)


@router.post("/runs/wait", responses=errors(400, 404, 409))
async def wait_stateless_run(
    body: RunCreate, request: Request, rt: RuntimeDep, authz: AuthzDep
) -> Response:
    return await _wait(rt, authz, None, body, request)


@router.get("/threads/{thread_id}/runs", responses={**returns(RunListResults), **errors(404)})
async def list_runs(
    thread_id: str,
    rt: RuntimeDep,
    authz: AuthzDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INTEGER)] = 0,
    status: str | None = None,
    select: Annotated[list[str] | None, Query()] = None,
) -> Response:
    access = await on_thread(authz, "read", thread_id)
    runs = await rt.runs.list_for_thread(
        thread_id, status=status, limit=limit, offset=offset, access=access
    )
    return json_response(selected((run_json(run) for run in runs), select, RUN_FIELDS))


@router.get("/threads/{thread_id}/runs/{run_id}", responses={**returns(Run), **errors(404)})
async def get_run(thread_id: str, run_id: str, rt: RuntimeDep, authz: AuthzDep) -> Response:
    access = await on_thread(authz, "read", thread_id, run_id)
    return json_response(run_json(await rt.runs.get(thread_id, run_id, access)))


@router.delete("/threads/{thread_id}/runs/{run_id}", status_code=204, responses=errors(404, 409))
async def delete_run(thread_id: str, run_id: str, rt: RuntimeDep, authz: AuthzDep) -> Response:
    access = await on_thread(authz, "delete", thread_id, run_id)
    await rt.runs.delete(thread_id, run_id, access)
    return no_content()


@router.get("/threads/{thread_id}/runs/{run_id}/join", responses=errors(404))
async def join_run(
    thread_id: str,
    run_id: str,
    rt: RuntimeDep,
    authz: AuthzDep,
    cancel_on_disconnect: bool = False,
) -> Response:
    access = await on_thread(authz, "read", thread_id, run_id)
    stack = contextlib.AsyncExitStack()
    run, subscription = await stack.enter_async_context(
        rt.run_streams.join(thread_id, run_id, access=access)
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
    authz: AuthzDep,
    stream_mode: Annotated[list[str] | None, Query()] = None,
    cancel_on_disconnect: bool = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    access = await on_thread(authz, "read", thread_id, run_id)
    stack = contextlib.AsyncExitStack()
    run, subscription = await stack.enter_async_context(
        rt.run_streams.join(thread_id, run_id, last_event_id, access)
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
    authz: AuthzDep,
    wait: bool = False,
    action: CancelAction = "interrupt",
) -> Response:
    access = await on_thread(authz, "update", thread_id, run_id, cancel=action)
    result = await rt.run_streams.cancel(thread_id, run_id, action, wait, access)
    return json_response(result if result is not None else {}) if wait else no_content(202)


@router.post("/runs/cancel", status_code=204, responses=errors(404))
async def cancel_runs(
    body: RunCancelMany, rt: RuntimeDep, authz: AuthzDep, action: CancelAction = "interrupt"
) -> Response:
    if body.status is not None and (body.run_ids or body.thread_id):
        raise Unprocessable("Provide either status, or thread_id and run_ids, not both")
    if body.status is None and body.run_ids is None:
        raise Unprocessable("Provide status, or thread_id and run_ids")
    value: dict[str, Any] = {"thread_id": body.thread_id, "metadata": {}, "action": action}
    access = await authz.check("threads", "update", value)
    runs = await rt.runs.active_runs(
        thread_id=body.thread_id, run_ids=body.run_ids, status=body.status, access=access
    )
    if not runs:
        raise NotFound("No runs found to cancel.")
    await rt.runs.cancel(runs, action)
    return no_content()


async def _create(
    rt: Runtime, authz: Authorizer, thread_id: str | None, body: RunCreate, request: Request
) -> Response:
    release_body(request)  # parsed into `body`: the bytes would be one more copy of the input
    run_request, access = await authorized_run(rt, authz, thread_id, body, request)
    run = await rt.runs.create(
        thread_id, run_request, request_id=request_id(request), access=access
    )
    return json_response(
        run_json(run), headers={"Content-Location": _run_path(run, thread_id is None)}
    )


async def _stream(
    rt: Runtime, authz: Authorizer, thread_id: str | None, body: RunCreate, request: Request
) -> Response:
    release_body(request)  # parsed into `body`: the bytes would be one more copy of the input
    run_request, access = await authorized_run(rt, authz, thread_id, body, request)
    stack = contextlib.AsyncExitStack()
    run, subscription = await stack.enter_async_context(
        rt.run_streams.create_and_subscribe(thread_id, run_request, request_id(request), access)
    )
    return sse_response(
        rt.runs.events(run, subscription),
        _locations(run, stateless=thread_id is None, join="stream"),
        _on_close(rt, run, stack, cancel_run=body.on_disconnect == "cancel"),
    )


async def _wait(
    rt: Runtime, authz: Authorizer, thread_id: str | None, body: RunCreate, request: Request
) -> Response:
    release_body(request)  # parsed into `body`: the bytes would be one more copy of the input
    run_request, access = await authorized_run(rt, authz, thread_id, body, request)
    stack = contextlib.AsyncExitStack()
    run, subscription = await stack.enter_async_context(
        rt.run_streams.create_and_subscribe(thread_id, run_request, request_id(request), access)
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
            # A response the server ended for its shutdown was no client leaving: the run goes
            # back to the queue and the client reconnects elsewhere.
            if cancel_run and not server_shutdown.begun:
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


async def authorized_run(
    rt: Runtime,
    authz: Authorizer,
    thread_id: str | None,
    body: RunCreate,
    request: HTTPConnection,
) -> tuple[RunRequest, Access]:
    """The body as a run request, once `threads.create_run` (which may stamp its metadata) and,
    for an assistant of the user's own, `assistants.read` allowed it; with the access the
    run's thread and assistant must be within, the caller's identity and the headers
    `http.configurable_headers` copies."""
    run_request = to_run_request(body)
    value: dict[str, Any] = {
        "thread_id": thread_id,
        "assistant_id": body.assistant_id,
        "run_id": None,
        "status": "pending",
        "metadata": dict(body.metadata or {}),
        "prevent_insert_if_inflight": body.multitask_strategy == "reject",
        "multitask_strategy": body.multitask_strategy,
        "if_not_exists": body.if_not_exists,
        "after_seconds": body.after_seconds,
        "kwargs": {"input": body.input, "command": run_request.command, "config": body.config},
        "action": None,
    }
    access = await authz.check("threads", "create_run", value)
    access = await using_assistant(authz, rt.assistants, body.assistant_id, within=access)
    return dataclasses.replace(
        run_request,
        metadata=value["metadata"],
        auth_user=authz.user,
        configurable_headers=rt.configurable_headers.select(request.headers),
    ), access


def to_run_request(body: RunCreate) -> RunRequest:
    fields = body.model_dump(exclude={"on_disconnect", "strict_resume", "langsmith_tracer"})
    if isinstance(fields["stream_mode"], str):
        fields["stream_mode"] = [fields["stream_mode"]]
    if body.command is not None:
        fields["command"] = body.command.model_dump(exclude_none=True)
    if body.checkpoint is not None:
        fields["checkpoint"] = body.checkpoint.model_dump(exclude_none=True)
    return RunRequest(**fields)
