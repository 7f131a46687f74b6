"""The `http` section of langgraph.json: a custom app served beside the API, CORS, switched-off
routers, a mount prefix, and the request headers copied into the configuration of runs."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from fastapi import APIRouter
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import Receive, Scope, Send

from stead.api import meta
from stead.api.responses import json_response
from stead.config import ConfigError, Settings
from stead.graphs import import_module_at

# Paths the custom app can never take over: health checks, metrics and the API docs.
UNSHADOWABLE_PATHS = frozenset(
    {"/ok", "/ready", "/metrics", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
)
# `http.disable_<name>` and the router tags it switches off.
ROUTER_SWITCHES = {
    "assistants": frozenset({"assistants"}),
    "threads": frozenset({"threads"}),
    "runs": frozenset({"runs", "crons"}),
    "store": frozenset({"store"}),
    "meta": frozenset({"meta"}),
}
# Liveness probes: at the root when the API is under a prefix; /ok and /health stay when the
# meta routes are switched off, so an operator can still tell that the server is up.
LIVENESS_PATHS = ("/", "/ok", "/health")
KEPT_META_PATHS = ("/ok", "/health", "/ready")
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
# The SDKs read these from cross-origin responses: pagination and the created run.
EXPOSED_HEADERS = ("x-pagination-total", "x-pagination-next", "content-location")
CORS_LIST_KEYS = frozenset({"allow_origins", "allow_methods", "allow_headers", "expose_headers"})
CORS_KEYS = CORS_LIST_KEYS | {"allow_credentials", "allow_origin_regex", "max_age"}
# Credentials never reach a graph's configuration, whatever the patterns say.
NEVER_COPIED_HEADERS = frozenset({"authorization", "x-api-key", "x-service-key", "x-tenant-id"})


@dataclass(frozen=True)
class HeaderFilter:
    """`http.configurable_headers`: which request headers a run sees in `config.configurable`."""

    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> HeaderFilter:
        section = settings.http.get("configurable_headers") or {}
        if not isinstance(section, dict) or set(section) - {"includes", "excludes"}:
            raise ConfigError(
                "http.configurable_headers must be {'includes': [...], 'excludes': [...]}"
            )
        return cls(
            includes=_patterns(section.get("includes"), "includes"),
            excludes=_patterns(section.get("excludes"), "excludes"),
        )

    def select(self, headers: Mapping[str, str]) -> dict[str, str]:
        if not self.includes:
            return {}
        return {name: value for name, value in headers.items() if self._copies(name.lower())}

    def _copies(self, name: str) -> bool:
        if name in NEVER_COPIED_HEADERS or _matches_any(name, self.excludes):
            return False
        return _matches_any(name, self.includes)


@dataclass(frozen=True)
class HttpOptions:
    """How the API is served: what `create_app` applies to the built-in application."""

    custom_app: Starlette | None
    cors: dict[str, Any]
    disabled: frozenset[str]
    mount_prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpOptions:
        """Read the `http` section and import its custom app; a problem is a ConfigError."""
        http = settings.http
        return cls(
            custom_app=_load_custom_app(http.get("app"), settings),
            cors=_cors(http.get("cors") or {}),
            disabled=frozenset(name for name in ROUTER_SWITCHES if http.get(f"disable_{name}")),
            mount_prefix=mount_prefix(settings),
        )

    @contextlib.asynccontextmanager
    async def custom_app_lifespan(self) -> AsyncIterator[Mapping[str, Any]]:
        """Run the custom app's own lifespan; the state it yields reaches its requests."""
        if self.custom_app is None:
            yield {}
            return
        async with self.custom_app.router.lifespan_context(self.custom_app) as state:
            yield state or {}

    def served(self, router: APIRouter) -> APIRouter:
        """The router, or what is left of it when its `http.disable_<name>` is set."""
        tags = set(router.tags)
        if not any(tags & ROUTER_SWITCHES[name] for name in self.disabled):
            return router
        remaining = APIRouter(tags=router.tags)
        if router is meta.router:
            for path in KEPT_META_PATHS:
                probe = meta.ready if path == "/ready" else meta.ok
                remaining.add_api_route(path, probe, methods=["GET"])
        return remaining

    def install(self, app: Starlette) -> Starlette:
        """Apply the options to the built-in app, once all its routes exist; serve the result."""
        if "meta" in self.disabled:
            app.router.routes = [r for r in app.router.routes if _path(r) not in DOCS_PATHS]
        if self.custom_app is not None:
            app.router.routes.insert(0, CustomAppRoute(self.custom_app))
        app.add_middleware(CORSMiddleware, **self.cors)
        return self._mounted(app) if self.mount_prefix else app

    def _mounted(self, app: Starlette) -> Starlette:
        """Everything under the prefix; liveness also at the root, where probes look."""
        outer = Starlette(
            routes=[
                *(Route(path, _liveness, methods=["GET"]) for path in LIVENESS_PATHS),
                Mount(self.mount_prefix, app=app),
            ],
            lifespan=app.router.lifespan_context,
            exception_handlers=app.exception_handlers,
        )
        outer.state = app.state
        return outer


class CustomAppRoute(BaseRoute):
    """The user's app as one route: it takes the requests its own routes match, before the
    built-in routes do, and handles them itself, with its own middleware and error handlers."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if _route_path(scope) in UNSHADOWABLE_PATHS:
            return Match.NONE, {}
        best = Match.NONE
        for route in self.app.router.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return Match.FULL, {}
            if match is Match.PARTIAL:
                best = Match.PARTIAL
        return best, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        return self.app.router.url_path_for(name, **path_params)


def mount_prefix(settings: Settings) -> str:
    """`MOUNT_PREFIX` (or `LANGGRAPH_MOUNT_PREFIX`) from the environment, else the config's."""
    prefix = (
        os.environ.get("MOUNT_PREFIX")
        or os.environ.get("LANGGRAPH_MOUNT_PREFIX")
        or settings.http.get("mount_prefix")
        or ""
    )
    if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
        raise ConfigError(f"mount_prefix must start with '/', like '/my-api'; got {prefix!r}")
    return prefix.rstrip("/")


async def _liveness(_request: Request) -> Response:
    return json_response(meta.ALIVE)


def _load_custom_app(spec: Any, settings: Settings) -> Starlette | None:
    """`http.app`, imported like a graph: `./file.py:variable` or `package.module:variable`."""
    if spec is None:
        return None
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError("http.app must be 'path/to/file.py:variable'")
    location, _, attribute = spec.rpartition(":")
    try:
        module = import_module_at(location, settings.project_dir)
    except Exception as exc:
        raise ConfigError(f"http.app ({spec}) failed to import: {exc!r}") from None
    app = getattr(module, attribute, None)
    if not isinstance(app, Starlette):
        raise ConfigError(f"http.app ({spec}) is not a Starlette or FastAPI application")
    return app


def _cors(section: Any) -> dict[str, Any]:
    """CORS as the official server sets it, with `http.cors` on top."""
    if not isinstance(section, dict) or set(section) - CORS_KEYS:
        raise ConfigError(f"http.cors must be an object with keys among {sorted(CORS_KEYS)}")
    for key in CORS_LIST_KEYS & set(section):
        if not isinstance(section[key], list) or not all(isinstance(v, str) for v in section[key]):
            raise ConfigError(f"http.cors.{key} must be a list of strings")
    default_origins = [] if section.get("allow_origin_regex") else _env_origins()
    cors: dict[str, Any] = {
        "allow_origins": default_origins,
        "allow_methods": ["*"],
        "allow_headers": ["*"],
        # Lets a public page (Studio in Chrome) call a server on a private network or localhost.
        "allow_private_network": _env_flag("ALLOW_PRIVATE_NETWORK"),
        **section,
        "expose_headers": list(
            dict.fromkeys([*EXPOSED_HEADERS, *section.get("expose_headers", [])])
        ),
    }
    wildcard = "*" in cors["allow_origins"]
    cors.setdefault("allow_credentials", not wildcard)
    if cors["allow_credentials"] and wildcard:
        # Every site could then make requests with the user's cookies.
        raise ConfigError("http.cors: allow_credentials needs allow_origins listed, not '*'")
    return cors


def _env_origins() -> list[str]:
    value = os.environ.get("CORS_ALLOW_ORIGINS", "*")
    return [origin.strip() for origin in value.split(",") if origin.strip()]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def _patterns(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"http.configurable_headers.{key} must be a list of glob patterns")
    return tuple(pattern.lower() for pattern in value)


def _matches_any(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _path(route: BaseRoute) -> str | None:
    return getattr(route, "path", None)


def _route_path(scope: Scope) -> str:
    """The request path below the mount point, as routes see it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path
