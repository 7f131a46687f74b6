"""Stead's routes call their endpoints past FastAPI's resolver where it adds nothing
(stead.api.routing.DirectRoute), and answer exactly as FastAPI's own handler answers: the same
request, sent once each way to the same application, gets the same status and body, errors
included. The busiest routes take the direct way; an application's dependency overrides apply.

Reference: src/stead/api/routing.py; issue 16.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

import fastapi.routing
import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

import stead.api.routing
from stead.api.routing import DirectCall, DirectRoute
from stead.app import create_app
from stead.cli import load_graph_specs
from stead.config import load_settings
from tests.conftest import GRAPHS_CONFIG

JSON = {"content-type": "application/json"}
JSON_UTF8 = {"content-type": "application/json; charset=utf-8"}
# Requests each way: (method, path, body, headers). Bodies are bytes as sent.
REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("POST", "/threads/search", b'{"limit": 2}', JSON),
    ("POST", "/threads/search", b'{"limit": 2}', JSON_UTF8),
    ("POST", "/threads/search", b'{"limit": 2}', {"content-type": "application/vnd.api+json"}),
    ("POST", "/threads/search", b'{"limit": 2}', {"content-type": "text/plain"}),
    ("POST", "/threads/search", b'{"limit": 2}', {}),
    ("POST", "/threads/search", b"", JSON),
    ("POST", "/threads/search", b"{", JSON),
    ("POST", "/threads/search", b"\xff\xfe", JSON),
    ("POST", "/threads/search", b"[" * 100_000, JSON),
    ("POST", "/threads/search", b"[1, 2]", JSON),
    ("POST", "/threads/search", b'{"limit": "many"}', JSON),
    ("POST", "/threads/search", b'{"limit": 0}', JSON),
    ("POST", "/threads/search", b'{"limit": 2, "unknown_field": 1}', JSON),
    ("POST", "/threads/count", b"{}", JSON),
    ("POST", "/assistants/search", b'{"graph_id": "echo"}', JSON),
    ("POST", "/runs/wait", b'{"assistant_id": "echo", "input": {"text": "hi"}}', JSON),
    ("POST", "/runs/wait", b'{"input": {"text": "hi"}}', JSON),
    ("POST", "/runs/wait", b'{"assistant_id": 5}', JSON),
    ("POST", "/runs/wait", b'{"assistant_id": "no-such-graph"}', JSON),
    ("POST", "/threads/not-a-uuid/runs/wait", b'{"assistant_id": "echo"}', JSON),
    ("GET", "/threads/not-a-uuid/runs/not-a-uuid", b"", {}),
    ("GET", "/assistants/not-a-uuid", b"", {}),
]
# The routes every run or search goes through: they must take the direct way.
BUSIEST = [
    ("POST", "/runs/wait"),
    ("POST", "/runs/stream"),
    ("POST", "/runs"),
    ("POST", "/threads/{thread_id}/runs/wait"),
    ("POST", "/threads/{thread_id}/runs/stream"),
    ("POST", "/threads/{thread_id}/runs"),
    ("POST", "/threads"),
    ("POST", "/threads/search"),
    ("POST", "/threads/count"),
    ("POST", "/assistants/search"),
    ("PUT", "/store/items"),
    ("POST", "/store/items/search"),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    data_dir: Path = tmp_path_factory.mktemp("direct-routes")
    settings = load_settings(GRAPHS_CONFIG, data_dir=data_dir)
    return create_app(settings, load_graph_specs(settings))  # type: ignore[return-value]


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stead") as client:
            yield client


@pytest.fixture
def resolver_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The requests FastAPI's resolver served (its handler looks it up at each request)."""
    calls: list[str] = []
    resolve = fastapi.routing.solve_dependencies

    async def counted(*, request: Any, **kwargs: Any) -> Any:
        calls.append(request.url.path)
        return await resolve(request=request, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    yield calls


async def _send(
    http: httpx.AsyncClient, request: tuple[str, str, bytes, dict[str, str]]
) -> tuple[int, Any]:
    method, path, body, headers = request
    response = await http.request(method, path, content=body, headers=headers)
    try:
        return response.status_code, response.json()
    except json.JSONDecodeError:
        return response.status_code, response.text


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r[0]} {r[1]} {r[2][:40]!r}")
async def test_a_request_is_answered_as_fastapis_own_handler_answers_it(
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    request_: tuple[str, str, bytes, dict[str, str]],
) -> None:
    direct = await _send(http, request_)
    # While FastAPI's telemetry traces a request, FastAPI's handler serves it.
    traced: list[object] = []

    def tracing() -> object:
        traced.append(request_)
        return object()

    monkeypatch.setattr(stead.api.routing, "get_telemetry_data", tracing)
    by_fastapi = await _send(http, request_)
    assert traced, "the route did not hand the request to FastAPI's handler"
    assert direct == by_fastapi


@pytest.mark.parametrize("method, path", BUSIEST)
def test_the_busiest_routes_take_the_direct_way(app: FastAPI, method: str, path: str) -> None:
    routes = [
        route
        for route in app.router.routes
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ())
    ]
    assert len(routes) == 1
    assert DirectCall.of(routes[0]) is not None


async def test_valid_requests_pass_fastapis_resolver_by_and_invalid_ones_go_through_it(
    http: httpx.AsyncClient, resolver_calls: list[str]
) -> None:
    run = {"assistant_id": "echo", "input": {"text": "hi"}}
    assert (await http.post("/runs/wait", json=run)).json() == {"text": "hi"}
    thread = (await http.post("/threads", json={})).json()
    found = (await http.post("/threads/search", json={"limit": 1})).json()
    assert [t["thread_id"] for t in found] == [thread["thread_id"]]
    assert resolver_calls == []

    refused = await http.post("/threads/search", json={"limit": "many"})
    assert refused.status_code == 422
    assert resolver_calls == ["/threads/search"]


async def _caller(request: Request) -> str:
    return "real"


async def _stand_in() -> str:
    return "overridden"


async def _answer(body: dict[str, int], caller: Annotated[str, Depends(_caller)]) -> Response:
    return JSONResponse({"caller": caller, "body": body})


async def test_a_dependency_the_application_overrides_is_overridden() -> None:
    app = FastAPI()
    router = APIRouter(route_class=DirectRoute, dependency_overrides_provider=app)
    router.add_api_route("/who", _answer, methods=["POST"])
    app.router.routes.extend(router.routes)
    assert isinstance(router.routes[0], APIRoute) and DirectCall.of(router.routes[0]) is not None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        answered = (await client.post("/who", json={"n": 1})).json()
        assert answered == {"caller": "real", "body": {"n": 1}}
        app.dependency_overrides[_caller] = _stand_in
        assert (await client.post("/who", json={"n": 1})).json()["caller"] == "overridden"
