"""Meta endpoints (health, info, OpenAPI, docs) and the shape of error responses."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body["detail"]


# --- health ------------------------------------------------------------------------------------


async def test_ok(http: httpx.AsyncClient) -> None:
    response = await http.get("/ok")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"ok": True, "services": {}}


async def test_ok_with_check_db(http: httpx.AsyncClient) -> None:
    response = await http.get("/ok", params={"check_db": 1})
    assert response.status_code == 200
    assert response.json()["ok"] is True


async def test_root_is_a_health_check(http: httpx.AsyncClient) -> None:
    # Load balancers probe "/": the official server answers it like /ok.
    response = await http.get("/")
    assert response.status_code == 200
    assert response.json()["ok"] is True


async def test_health(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")
    assert response.status_code == 200
    assert response.json()["ok"] is True


# --- info --------------------------------------------------------------------------------------


async def test_info(http: httpx.AsyncClient) -> None:
    response = await http.get("/info")
    assert response.status_code == 200
    info = response.json()
    assert isinstance(info["version"], str)
    assert info["version"]
    assert isinstance(info["langgraph_py_version"], str)
    flags = info["flags"]
    assert isinstance(flags, dict)
    # Studio hides the assistants UI unless this flag is on.
    assert flags["assistants"] is True
    assert isinstance(flags["crons"], bool)
    assert all(isinstance(value, bool) for value in flags.values())
    assert info["host"]["kind"] == "self-hosted"


async def test_info_through_sdk_http(client: LangGraphClient) -> None:
    info = await client.http.get("/info")
    assert info["flags"]["assistants"] is True


def test_info_through_sync_sdk_http(sync_client: SyncLangGraphClient) -> None:
    assert sync_client.http.get("/ok")["ok"] is True
    assert "version" in sync_client.http.get("/info")


# --- OpenAPI and docs --------------------------------------------------------------------------


@pytest.fixture
async def openapi(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


async def test_openapi_is_a_valid_document(openapi: dict[str, Any]) -> None:
    assert openapi["openapi"].startswith("3.")
    assert isinstance(openapi["info"]["title"], str)
    assert isinstance(openapi["info"]["version"], str)
    assert openapi["paths"]
    methods = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
    for path, operations in openapi["paths"].items():
        assert path.startswith("/"), path
        assert set(operations) & methods, path
        for method in set(operations) & methods:
            assert "responses" in operations[method], (method, path)
    # Every $ref points at something that exists.
    for ref in _refs(openapi):
        assert _resolve(openapi, ref) is not None, ref


async def test_openapi_lists_the_api(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    expected = {
        "/threads": {"post"},
        "/threads/search": {"post"},
        "/threads/{thread_id}": {"get", "patch", "delete"},
        "/threads/{thread_id}/runs": {"get", "post"},
        "/threads/{thread_id}/runs/stream": {"post"},
        "/threads/{thread_id}/runs/wait": {"post"},
        "/runs/stream": {"post"},
        "/runs/wait": {"post"},
        "/assistants": {"post"},
        "/assistants/search": {"post"},
        "/assistants/{assistant_id}": {"get", "patch", "delete"},
        "/store/items": {"put", "get", "delete"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))


async def test_docs_serve_html(http: httpx.AsyncClient) -> None:
    response = await http.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "openapi.json" in response.text


# --- error bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/assistants"),
        ("POST", "/assistants/search"),
        ("POST", "/assistants/count"),
        ("POST", "/threads"),
        ("POST", "/threads/search"),
        ("POST", "/runs/wait"),
        ("PUT", "/store/items"),
        ("POST", "/store/items/search"),
    ],
)
async def test_bad_json_body_is_422(http: httpx.AsyncClient, method: str, path: str) -> None:
    response = await http.request(
        method, path, content=b'{"graph_id": ', headers={"content-type": "application/json"}
    )
    detail = assert_error(response, 422)
    assert "json" in detail.lower()


async def test_schema_violation_is_422_with_string_detail(http: httpx.AsyncClient) -> None:
    response = await http.post("/assistants", json={"graph_id": 42})
    assert_error(response, 422)
    response = await http.post("/threads/search", json={"limit": "ten"})
    assert_error(response, 422)


async def test_unknown_route_is_404_json(http: httpx.AsyncClient) -> None:
    assert_error(await http.get(f"/no-such-route-{uuid.uuid4().hex}"), 404)


async def test_wrong_method_is_405_json(http: httpx.AsyncClient) -> None:
    assert_error(await http.put("/ok"), 405)


async def test_not_found_resources_are_404_json(http: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    assert_error(await http.get(f"/threads/{missing}"), 404)
    assert_error(await http.get(f"/assistants/{missing}"), 404)


async def test_bad_uuid_path_parameter_is_422(http: httpx.AsyncClient) -> None:
    detail = assert_error(await http.get("/threads/not-a-uuid"), 422)
    assert "UUID" in detail
