"""Request bodies a route can let go of once it has them parsed.

FastAPI keeps the body it read for as long as the route runs (a local of its request handler),
and Starlette keeps it, with its parse, on the request until the response ends. A run's route
stores the run before it answers: with a large input, the body was one more copy of it while the
run was stored, and, for a run waited on or streamed, until the run ended. Routes of
`BodyReleasingRoute` read their body into a bytearray that `release_body` empties.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from starlette.requests import HTTPConnection

from stead.api.routing import DirectRoute


class _BodyReleasingRequest(Request):
    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            received = bytearray()
            async for chunk in self.stream():
                received += chunk
            # Where Starlette keeps bytes: what reads it (its `json`, FastAPI) takes either.
            self._body = received  # type: ignore[assignment]
        return self._body


class BodyReleasingRoute(DirectRoute):
    """A route whose request's body `release_body` can empty (FastAPI's documented way to give
    a route its own Request class)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_releasable_body(request: Request) -> Response:
            return await handler(_BodyReleasingRequest(request.scope, request.receive))

        return with_releasable_body


def release_body(request: HTTPConnection) -> None:
    """Let go of the body read, and of its parse (the route's model holds what it needs). The
    names are Starlette's own (pinned); test_large_values.py fails if a release changes them."""
    body = vars(request).pop("_body", None)
    if isinstance(body, bytearray):
        body.clear()
    vars(request).pop("_json", None)
