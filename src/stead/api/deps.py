"""What routes receive from the application: the runtime and validated path values."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from stead.api.middleware import REQUEST_ID_SCOPE_KEY
from stead.auth.middleware import USER_SCOPE_KEY
from stead.auth.policy import Authorizer
from stead.errors import Unprocessable
from stead.ids import is_uuid
from stead.runtime import Runtime


# Dependencies are coroutines: FastAPI runs a plain function in its thread pool, a thread hop
# per request for a lookup of microseconds.
async def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]


async def _authorizer(request: Request) -> Authorizer:
    runtime: Runtime = request.app.state.runtime
    return Authorizer(runtime.auth.custom, request.scope.get(USER_SCOPE_KEY))


AuthzDep = Annotated[Authorizer, Depends(_authorizer)]


def require_uuid(value: str, kind: str) -> str:
    if not is_uuid(value):
        raise Unprocessable(f"Invalid {kind} ID: must be a UUID")
    return value


def request_id(request: HTTPConnection) -> str | None:
    """The id RequestLogMiddleware gave the request (the client's, when it sent one)."""
    found: str | None = request.scope.get(REQUEST_ID_SCOPE_KEY)
    return found
