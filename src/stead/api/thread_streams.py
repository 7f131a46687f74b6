"""The thread stream: `GET /threads/{thread_id}/stream`, every run of a thread as it happens."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

from stead.api.deps import AuthzDep, RuntimeDep, require_uuid
from stead.api.openapi import EVENT_STREAM, errors
from stead.api.responses import sse_response
from stead.api.routing import DirectRoute

router = APIRouter(tags=["threads"], responses=errors(404, 422), route_class=DirectRoute)


@router.get("/threads/{thread_id}/stream", response_class=Response, responses=EVENT_STREAM)
async def join_thread_stream(
    thread_id: str,
    rt: RuntimeDep,
    authz: AuthzDep,
    stream_modes: Annotated[list[str] | None, Query()] = None,
    # The SDKs' join_stream sends `stream_mode`; the official server reads only `stream_modes`.
    stream_mode: Annotated[list[str] | None, Query()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    require_uuid(thread_id, "thread")
    access = await authz.check("threads", "read", {"thread_id": thread_id})
    stack = contextlib.AsyncExitStack()
    events = await stack.enter_async_context(
        rt.thread_streams.join(
            thread_id, [*(stream_modes or ()), *(stream_mode or ())], last_event_id, access
        )
    )
    return sse_response(events, {}, stack.aclose)
