"""What a server facing the network needs whatever its auth: a cap on request bodies, an id on
every request, and path values checked before anything is read."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import GRAPHS_DIR
from tests.support.servers import StartedServer, stead_server

LIMIT = 4096


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    config = tmp_path_factory.mktemp("limited") / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"echo": f"{GRAPHS_DIR / 'agent.py'}:echo"}}))
    with stead_server(config, env={"HTTP_MAX_REQUEST_BODY_BYTES": str(LIMIT)}) as started:
        yield started


@pytest.fixture
async def limited(limited_server: StartedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=limited_server.url, timeout=30) as client:
        yield client


async def test_a_body_over_the_limit_is_refused_and_nothing_is_written(
    limited: httpx.AsyncClient,
) -> None:
    before = (await limited.post("/threads/count", json={})).json()
    oversized = {"metadata": {"blob": "x" * (LIMIT * 2)}}
    refused = await limited.post("/threads", json=oversized)
    assert refused.status_code == 413
    assert refused.json() == {"detail": f"Request body exceeds {LIMIT} bytes"}

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"metadata": {"blob": "'
        for _ in range(4):
            yield b"y" * LIMIT
        yield b'"}}'

    # No Content-Length: the body is counted as it arrives.
    chunked = await limited.post(
        "/threads", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert (await limited.post("/threads/count", json={})).json() == before
    assert (await limited.post("/threads", json={"metadata": {"small": True}})).status_code == 200


async def test_every_response_carries_a_request_id(http: httpx.AsyncClient) -> None:
    generated = await http.get("/ok")
    uuid.UUID(generated.headers["x-request-id"])
    kept = await http.get("/ok", headers={"x-request-id": "client-42"})
    assert kept.headers["x-request-id"] == "client-42"
    # An id that could forge a log line is replaced, not echoed.
    forged = await http.get("/ok", headers={"x-request-id": "a b\tc"})
    uuid.UUID(forged.headers["x-request-id"])


async def test_the_request_id_reaches_the_run(http: httpx.AsyncClient) -> None:
    thread = (await http.post("/threads", json={})).json()
    await http.post(
        f"/threads/{thread['thread_id']}/runs/wait",
        json={"assistant_id": "echo", "input": {"text": "x"}},
        headers={"x-request-id": "trace-7"},
    )
    runs = (await http.get(f"/threads/{thread['thread_id']}/runs")).json()
    configurable = runs[0]["kwargs"]["config"]["configurable"]
    assert configurable["langgraph_request_id"] == "trace-7"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/threads/not-a-uuid"),
        ("GET", "/threads/not-a-uuid/state"),
        ("GET", "/threads/not-a-uuid/history"),
        ("GET", "/threads/00000000-0000-0000-0000-000000000000/runs/not-a-uuid"),
        ("GET", "/threads/not-a-uuid/runs/00000000-0000-0000-0000-000000000000/join"),
        ("GET", "/assistants/not-a-uuid"),
        ("GET", "/assistants/not-a-uuid/schemas"),
        ("GET", "/runs/crons/not-a-uuid"),
        ("DELETE", "/threads/not-a-uuid"),
    ],
)
async def test_a_malformed_id_is_422(http: httpx.AsyncClient, method: str, path: str) -> None:
    response = await http.request(method, path)
    assert response.status_code == 422
    assert "UUID" in response.json()["detail"]


def test_no_limit_setting_stops_the_server_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"graphs": {"echo": f"{GRAPHS_DIR / 'agent.py'}:echo"}}))
    with (
        pytest.raises(Exception, match="HTTP_MAX_REQUEST_BODY_BYTES must be an integer"),
        stead_server(config, env={"HTTP_MAX_REQUEST_BODY_BYTES": "lots"}, timeout=10),
    ):
        pass
