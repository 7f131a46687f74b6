"""Custom auth: an unmodified `langgraph_sdk.Auth` object named by `auth.path` in langgraph.json.

`@auth.authenticate` decides who a request is; `@auth.on...` handlers decide what that user may
do to a resource, and may rewrite the value (stamp an owner, prefix a store namespace) or return
a metadata filter that the queries then apply.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from langgraph_sdk import Auth
from starlette.requests import Request

from stead.auth.user import AuthUser, normalize_user
from stead.config import ConfigError
from stead.errors import AuthError
from stead.graphs import import_module_at

logger = logging.getLogger("stead.auth")

# Every (resource, action) the API authorizes, for the start-up report of uncovered ones.
RESOURCE_ACTIONS = {
    "threads": ("create", "read", "update", "delete", "search", "create_run"),
    "assistants": ("create", "read", "update", "delete", "search"),
    "crons": ("create", "read", "update", "delete", "search"),
    "store": ("put", "get", "search", "delete", "list_namespaces"),
}


class CustomAuth:
    def __init__(self, auth: Auth) -> None:
        self._auth = auth
        self._authenticate = auth._authenticate_handler
        self._parameters = _authenticate_parameters(self._authenticate)
        self._has_authorization = bool(auth._handlers or auth._global_handlers)

    @classmethod
    def load(cls, path: str, base: Path) -> CustomAuth:
        """Import `./file.py:auth` or `package.module:auth`; any problem stops `stead run`."""
        location, _, attribute = path.rpartition(":")
        if not location or not attribute:
            raise ConfigError(f"auth.path must be 'path/to/file.py:variable', got {path!r}")
        try:
            module = import_module_at(location, base)
        except Exception as exc:
            raise ConfigError(f"auth.path {path} failed to import: {exc!r}") from None
        auth = getattr(module, attribute, None)
        if not isinstance(auth, Auth):
            raise ConfigError(f"auth.path {path} must name a langgraph_sdk.Auth instance")
        loaded = cls(auth)
        loaded.report_uncovered()
        return loaded

    @property
    def authenticates(self) -> bool:
        return self._authenticate is not None

    async def authenticate(self, request: Request) -> AuthUser:
        assert self._authenticate is not None
        arguments = {name: _argument(name, request) for name in self._parameters}
        with _refusals_as_auth_errors():
            result: Any = self._authenticate(**arguments)
            if inspect.isawaitable(result):
                result = await result
        try:
            return normalize_user(result)
        except TypeError as exc:
            logger.error("@auth.authenticate: %s", exc)
            raise AuthError(500, "Authentication handler returned an invalid user") from None

    async def authorize(
        self, user: AuthUser, resource: str, action: str, value: dict[str, Any]
    ) -> Mapping[str, Any] | None:
        """Run the most specific handler; returns its metadata filter, or None to allow all.

        Unlike the official server, an action no handler covers is refused when the object
        has any authorization handler: a forgotten handler must not open a resource to all.
        """
        handler = self._handler_for(resource, action)
        if handler is None:
            if self._has_authorization:
                raise AuthError(403, f"No authorization handler covers {resource}.{action}")
            return None
        context = Auth.types.AuthContext(
            user=user,  # type: ignore[arg-type]
            permissions=list(user.permissions),
            resource=resource,  # type: ignore[arg-type]
            action=action,  # type: ignore[arg-type]
        )
        with _refusals_as_auth_errors():
            result = await handler(ctx=context, value=value)
        return _as_filter(result, resource, action)

    def _handler_for(self, resource: str, action: str) -> Callable[..., Any] | None:
        for key in ((resource, action), (resource, "*"), ("*", action), ("*", "*")):
            if key in self._auth._handlers:
                return self._auth._handlers[key][-1]
        return self._auth._global_handlers[-1] if self._auth._global_handlers else None

    def report_uncovered(self) -> None:
        if not self._has_authorization:
            logger.warning("auth: no @auth.on handlers; every authenticated user may do everything")
            return
        uncovered = [
            f"{resource}.{action}"
            for resource, actions in RESOURCE_ACTIONS.items()
            for action in actions
            if self._handler_for(resource, action) is None
        ]
        if uncovered:
            logger.warning("auth: no handler covers %s; they are refused", ", ".join(uncovered))


@contextlib.contextmanager
def _refusals_as_auth_errors() -> Iterator[None]:
    """A handler refuses by raising Auth's HTTPException (its status and detail are kept) or by
    failing an assert (403)."""
    try:
        yield
    except Auth.exceptions.HTTPException as exc:
        raise AuthError(exc.status_code, str(exc.detail), exc.headers) from None
    except AssertionError as exc:
        raise AuthError(403, str(exc) or "Forbidden") from None


def _as_filter(result: Any, resource: str, action: str) -> Mapping[str, Any] | None:
    if result is None or result is True:
        return None
    if result is False:
        raise AuthError(403, "Forbidden")
    if isinstance(result, Mapping):
        return result
    logger.error("auth handler for %s.%s returned %r", resource, action, type(result))
    raise AuthError(500, "Authorization handler returned an invalid result")


# What @auth.authenticate may ask for, by parameter name.
_REQUEST_PARTS: dict[str, Callable[[Request], Any]] = {
    "request": lambda request: request,
    "scope": lambda request: request.scope,
    "path": lambda request: request.url.path,
    "method": lambda request: request.method,
    "headers": lambda request: dict(request.scope["headers"]),
    "authorization": lambda request: request.headers.get("authorization"),
    "query_params": lambda request: dict(request.query_params),
    "path_params": lambda request: dict(request.path_params),
    "scopes": lambda request: list(request.scope.get("auth", {}).get("scopes", [])),
}


def _authenticate_parameters(handler: Callable[..., Any] | None) -> list[str]:
    if handler is None:
        return []
    names = list(inspect.signature(handler).parameters)
    unknown = [name for name in names if name not in _REQUEST_PARTS]
    if unknown:
        raise ConfigError(
            f"@auth.authenticate asks for {', '.join(unknown)}; it may take "
            f"{', '.join(_REQUEST_PARTS)}"
        )
    return names


def _argument(name: str, request: Request) -> Any:
    return _REQUEST_PARTS[name](request)
