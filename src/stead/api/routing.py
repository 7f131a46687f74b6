"""Stead's routes: FastAPI's, with the endpoint called directly where FastAPI's resolver adds
nothing.

FastAPI resolves every request's parameters through one general resolver (dependencies of every
kind, each sort of parameter, a sub-response, its telemetry): on a stateless run, 0.15 to 0.2 ms
of 2.4 to 2.6 ms of server CPU at 64 clients (bench/README.md). For an endpoint whose parameters
are only the request, plain string path parameters, one JSON body and dependencies that take
nothing but the request, `DirectRoute` gathers the arguments itself: the body read, decoded and
validated as FastAPI does it (Starlette's `Request.json`, FastAPI's own `request_body_to_args`),
the dependencies awaited once each. What it does not take on goes to FastAPI's handler as
before: another content type, an empty body, JSON that does not parse or a body that does not
validate (so every error is FastAPI's), every request while FastAPI's telemetry traces it (so
the spans are FastAPI's), and every request while the application overrides a dependency.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response, params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class DirectRoute(APIRoute):
    """FastAPI's route, calling its endpoint directly when `DirectCall` can gather its arguments
    (the route class of Stead's routers)."""

    def get_route_handler(self) -> Handler:
        fastapi_handler = super().get_route_handler()
        call = DirectCall.of(self)
        if call is None:
            return fastapi_handler
        overrides_provider = self.dependency_overrides_provider

        async def direct_or_fastapi(request: Request) -> Response:
            fastapi_only = get_telemetry_data() is not None or _overrides(overrides_provider)
            arguments = None if fastapi_only else await call.arguments(request)
            if arguments is None:
                return await fastapi_handler(request)
            response: Response = await call.endpoint(**arguments)
            return response

        return direct_or_fastapi


@dataclass(frozen=True)
class DirectCall:
    """How to gather an endpoint's arguments without FastAPI's resolver."""

    endpoint: Callable[..., Awaitable[Any]]
    request_name: str | None
    path_names: tuple[str, ...]
    body: Dependant | None
    embed_body: bool
    dependencies: tuple[tuple[str, Callable[..., Awaitable[Any]], str], ...]

    @classmethod
    def of(cls, route: APIRoute) -> DirectCall | None:
        """The route's direct call, or None when an endpoint parameter needs FastAPI."""
        dependant = route.dependant
        if not (
            _is_coroutine_function(dependant.call)
            and route.response_field is None
            and _no_special_parameters(dependant)
            and not (dependant.query_params or dependant.header_params or dependant.cookie_params)
            and all(_is_plain_string(field) for field in dependant.path_params)
            and _is_json_body(dependant)
            and all(_takes_only_the_request(sub) for sub in dependant.dependencies)
        ):
            return None
        return cls(
            endpoint=dependant.call,  # type: ignore[arg-type]
            request_name=dependant.request_param_name,
            path_names=tuple(field.name for field in dependant.path_params),
            body=dependant if dependant.body_params else None,
            embed_body=route._embed_body_fields,
            dependencies=tuple(
                (sub.name, sub.call, sub.request_param_name)  # type: ignore[misc]
                for sub in dependant.dependencies
            ),
        )

    async def arguments(self, request: Request) -> dict[str, Any] | None:
        """The endpoint's arguments, or None where FastAPI must have its say."""
        arguments: dict[str, Any] = {name: request.path_params[name] for name in self.path_names}
        if self.body is not None:
            body = await _json_body(request)
            if body is None:
                return None
            values, errors = await request_body_to_args(
                self.body.body_params, body, embed_body_fields=self.embed_body
            )
            if errors:
                return None
            arguments.update(values)
        if self.request_name is not None:
            arguments[self.request_name] = request
        for name, dependency, request_name in self.dependencies:
            arguments[name] = await dependency(**{request_name: request})
        return arguments


async def _json_body(request: Request) -> Any | None:
    """The body's JSON when it is declared `application/json` and decodes; None otherwise
    (FastAPI's handler then reads the body again, from the request's copy, and says why)."""
    content_type = request.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != "application/json":
        return None
    if not await request.body():
        return None
    try:
        return await request.json()
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        return None


def _overrides(provider: Any) -> bool:
    """Whether the application overrides any dependency (FastAPI's `dependency_overrides`)."""
    return bool(getattr(provider, "dependency_overrides", None))


def _is_coroutine_function(call: Callable[..., Any] | None) -> bool:
    return inspect.iscoroutinefunction(call)


def _no_special_parameters(dependant: Dependant) -> bool:
    return not (
        dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


def _is_plain_string(field: Any) -> bool:
    """A path parameter FastAPI would pass on as Starlette matched it."""
    info = field.field_info
    return info.annotation is str and not info.metadata and field.alias == field.name


def _is_json_body(dependant: Dependant) -> bool:
    """No body, or one read as JSON (not a form or files)."""
    return not any(isinstance(field.field_info, params.Form) for field in dependant.body_params)


def _takes_only_the_request(sub: Dependant) -> bool:
    """A dependency that is a coroutine function of the request alone."""
    return (
        sub.name is not None
        and sub.request_param_name is not None
        and _is_coroutine_function(sub.call)
        and not sub.dependencies
        and _no_special_parameters(sub)
        and not (sub.path_params or sub.query_params or sub.header_params or sub.cookie_params)
        and not sub.body_params
    )
