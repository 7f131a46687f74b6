"""The `http` section of langgraph.json: custom app, CORS, disabled routers, mount prefix and
configurable headers, each on a server started with its own langgraph.json."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client

from tests.conftest import GRAPHS_DIR
from tests.support.servers import StartedServer, free_port, stead_server

AGENT = GRAPHS_DIR / "agent.py"
CUSTOM_APP = f"{GRAPHS_DIR / 'http_app.py'}:app"
ORIGIN = "https://app.example.com"


def _config(tmp: Path, http: dict[str, Any]) -> Path:
    config = tmp / "langgraph.json"
    graphs = {"echo": f"{AGENT}:echo", "factory": f"{AGENT}:make_graph"}
    config.write_text(json.dumps({"graphs": graphs, "http": http}))
    return config


@pytest.fixture(scope="module")
def custom_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    config = _config(
        tmp_path_factory.mktemp("custom"),
        {
            "app": CUSTOM_APP,
            "disable_store": True,
            "configurable_headers": {"includes": ["x-team-*", "suffix"], "excludes": ["*secret*"]},
        },
    )
    with stead_server(config, env={"ALLOW_PRIVATE_NETWORK": "true"}) as started:
        yield started


@pytest.fixture(scope="module")
def prefixed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    config = _config(
        tmp_path_factory.mktemp("prefixed"),
        {"mount_prefix": "/lg", "cors": {"allow_origins": [ORIGIN], "expose_headers": ["x-own"]}},
    )
    with stead_server(config) as started:
        yield started


@pytest.fixture(scope="module")
def reduced_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    """MOUNT_PREFIX from the environment wins over the file's; meta and runs switched off."""
    config = _config(
        tmp_path_factory.mktemp("reduced"),
        {"mount_prefix": "/from-file", "disable_meta": True, "disable_runs": True},
    )
    with stead_server(config, env={"MOUNT_PREFIX": "/from-env/"}) as started:
        yield started


@pytest.fixture
async def custom(custom_server: StartedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=custom_server.url, timeout=30) as client:
        yield client


@pytest.fixture
async def prefixed(prefixed_server: StartedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{prefixed_server.url}/lg", timeout=30) as client:
        yield client


async def test_custom_app_routes_are_served_with_its_lifespan(custom: httpx.AsyncClient) -> None:
    response = await custom.get("/custom/hello")
    assert response.status_code == 200
    assert response.json() == {
        "hello": "from the custom app",
        "greeting": "set by the custom app's lifespan",
    }
    assert (await custom.post("/threads", json={})).status_code == 200


async def test_custom_app_shadows_info_but_never_health_or_docs(custom: httpx.AsyncClient) -> None:
    assert (await custom.get("/info")).json() == {"custom_info": True}
    assert (await custom.get("/ok")).json() == {"ok": True, "services": {}}
    spec = (await custom.get("/openapi.json")).json()
    assert spec["info"]["title"] == "Stead Agent Server"
    assert (await custom.get("/docs")).status_code == 200


async def test_disabled_router_is_gone_while_the_others_work(custom: httpx.AsyncClient) -> None:
    put = await custom.put("/store/items", json={"namespace": ["a"], "key": "k", "value": {}})
    assert put.status_code == 404
    assert (await custom.post("/store/items/search", json={})).status_code == 404
    assert (await custom.post("/assistants/search", json={})).status_code == 200


async def test_cors_preflight_allows_any_origin_by_default(custom: httpx.AsyncClient) -> None:
    response = await custom.options(
        "/threads",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "content-type,x-api-key"
    assert response.headers["access-control-allow-private-network"] == "true"
    assert "access-control-allow-credentials" not in response.headers


async def test_cors_exposes_pagination_and_run_location(custom: httpx.AsyncClient) -> None:
    response = await custom.post("/threads/search", json={}, headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == "*"
    exposed = response.headers["access-control-expose-headers"].split(", ")
    assert exposed == ["x-pagination-total", "x-pagination-next", "content-location"]


async def test_configurable_headers_reach_the_graph(custom: httpx.AsyncClient) -> None:
    """The `factory` graph appends `configurable.suffix`; the header named suffix sets it."""
    thread_id = (await custom.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "factory", "input": {"text": "hi"}}
    result = await custom.post(
        f"/threads/{thread_id}/runs/wait", json=body, headers={"suffix": "?!"}
    )
    assert result.json() == {"text": "HI?!"}


async def test_configurable_headers_follow_includes_and_excludes(
    custom: httpx.AsyncClient, http: httpx.AsyncClient
) -> None:
    headers = {
        "x-team-name": "blue",
        "x-team-secret": "hidden",
        "x-other": "not included",
        "authorization": "Bearer never-copied",
    }
    body = {"assistant_id": "echo", "input": {"text": "x"}}
    run = (await custom.post("/runs", json=body, headers=headers)).json()
    configurable = run["kwargs"]["config"]["configurable"]
    assert configurable["x-team-name"] == "blue"
    assert not {"x-team-secret", "x-other", "authorization"} & set(configurable)
    # Without configurable_headers in langgraph.json, no header is copied.
    default = (await http.post("/runs", json=body, headers=headers)).json()
    assert "x-team-name" not in default["kwargs"]["config"]["configurable"]


async def test_mount_prefix_serves_the_api_under_it(
    prefixed_server: StartedServer, prefixed: httpx.AsyncClient
) -> None:
    assert (await prefixed.post("/threads", json={})).status_code == 200
    assert (await prefixed.get("/ok")).status_code == 200
    async with httpx.AsyncClient(base_url=prefixed_server.url) as root:
        assert (await root.post("/threads", json={})).status_code == 404
        assert (await root.get("/ok")).json() == {"ok": True, "services": {}}


async def test_sdk_works_under_the_prefix_and_follows_locations(
    prefixed_server: StartedServer, prefixed: httpx.AsyncClient
) -> None:
    sdk = get_client(url=f"{prefixed_server.url}/lg", api_key=None)
    try:
        thread_id = (await sdk.threads.create())["thread_id"]
        created: list[Any] = []
        events = [
            part.event
            async for part in sdk.runs.stream(
                thread_id, "echo", input={"text": "p"}, on_run_created=created.append
            )
        ]
        assert events == ["metadata", "values", "values"]
        [metadata] = created
        assert metadata["thread_id"] == thread_id
        run = await sdk.runs.get(thread_id, metadata["run_id"])
        assert run["status"] == "success"
    finally:
        await sdk.http.client.aclose()
    # The SDKs resolve Location against their base URL, which already holds the prefix.
    response = await prefixed.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "echo", "input": {"text": "q"}}
    )
    joined = await prefixed.get(response.headers["location"])
    assert joined.status_code == 200
    assert joined.json() == {"text": "q"}


async def test_cors_with_listed_origins_allows_credentials(prefixed: httpx.AsyncClient) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    allowed = await prefixed.options("/threads", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-private-network" not in allowed.headers
    other = {"Origin": "https://elsewhere.example.com", **preflight}
    assert (await prefixed.options("/threads", headers=other)).status_code == 400
    response = await prefixed.post("/threads/search", json={}, headers={"Origin": ORIGIN})
    exposed = response.headers["access-control-expose-headers"].split(", ")
    assert exposed == ["x-pagination-total", "x-pagination-next", "content-location", "x-own"]


async def test_disabled_meta_keeps_ok_and_env_prefix_wins(reduced_server: StartedServer) -> None:
    async with httpx.AsyncClient(base_url=f"{reduced_server.url}/from-env") as client:
        assert (await client.get("/ok")).status_code == 200
        for path in ("/info", "/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 404, path
        thread_id = (await client.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": "echo", "input": {"text": "x"}}
        assert (await client.post(f"/threads/{thread_id}/runs", json=body)).status_code == 404
        assert (await client.post("/runs/wait", json=body)).status_code == 404
    async with httpx.AsyncClient(base_url=f"{reduced_server.url}/from-file") as client:
        assert (await client.post("/threads", json={})).status_code == 404


@pytest.mark.parametrize(
    ("http", "expected"),
    [
        ({"cors": {"allow_credentials": True}}, "allow_credentials needs allow_origins"),
        ({"app": "./missing.py:app"}, "http.app (./missing.py:app) failed to import"),
        ({"app": f"{AGENT}:echo"}, "is not a Starlette or FastAPI application"),
        ({"mount_prefix": "lg"}, "mount_prefix must start with '/'"),
    ],
)
def test_bad_http_section_stops_the_server_with_one_line(
    tmp_path: Path, http: dict[str, Any], expected: str
) -> None:
    config = _config(tmp_path, http)
    result = subprocess.run(
        [sys.executable, "-m", "stead", "run", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stead: error:")
    assert expected in lines[0]
