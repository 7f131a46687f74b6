"""Built-in API keys: `stead apikey create|list|revoke` against the server's own database, the
`x-api-key` header on every protected request, and keys kept only as hashes."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from langgraph_sdk import get_client

from tests.conftest import GRAPHS_DIR
from tests.support.postgres import session_runtime_env
from tests.support.servers import REPO_ROOT, StartedServer, stead_server

AGENT = GRAPHS_DIR / "agent.py"


@dataclass
class KeyedServer:
    server: StartedServer
    config: Path
    env: dict[str, str]

    def apikey(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.server.data_dir is not None
        command = [sys.executable, "-m", "stead", "apikey", *args]
        command += ["--config", str(self.config), "--data-dir", str(self.server.data_dir)]
        env = {**os.environ, **self.env, "PYTHONPATH": str(REPO_ROOT / "src")}
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    def create_key(self, name: str) -> str:
        created = self.apikey("create", "--name", name)
        assert created.returncode == 0, created.stderr
        return created.stdout.strip()


def _write_config(tmp: Path, auth: dict[str, object] | None) -> Path:
    config = tmp / "langgraph.json"
    graphs = {"echo": f"{AGENT}:echo", "whoami": f"{GRAPHS_DIR / 'whoami.py'}:graph"}
    config.write_text(json.dumps({"graphs": graphs, **({"auth": auth} if auth else {})}))
    return config


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedServer]:
    config = _write_config(tmp_path_factory.mktemp("keys"), {"api_keys": True})
    with contextlib.ExitStack() as stack:
        env = session_runtime_env(stack, config)
        server = stack.enter_context(stead_server(config, env=env))
        yield KeyedServer(server, config, env)


async def test_requests_need_a_valid_key(keyed: KeyedServer) -> None:
    key = keyed.create_key("ci")
    assert key.startswith("stead_")
    async with httpx.AsyncClient(base_url=keyed.server.url, timeout=30) as http:
        missing = await http.post("/threads/search", json={})
        assert missing.status_code == 401
        assert "x-api-key" in missing.json()["detail"]
        wrong = await http.post("/threads/search", json={}, headers={"x-api-key": key + "x"})
        assert wrong.status_code == 401
        allowed = await http.post("/threads/search", json={}, headers={"x-api-key": key})
        assert allowed.status_code == 200
        for path in ("/ok", "/health"):
            assert (await http.get(path)).status_code == 200
        assert (await http.get("/metrics")).status_code != 401


async def test_the_sdk_sends_its_api_key_and_the_graph_sees_the_key(keyed: KeyedServer) -> None:
    key = keyed.create_key("reporting")
    client = get_client(url=keyed.server.url, api_key=key)
    try:
        thread = await client.threads.create()
        result = await client.runs.wait(thread["thread_id"], "whoami", input={})
        assert isinstance(result, dict) and result["user_id"] == "apikey:reporting"
    finally:
        await client.http.client.aclose()


async def test_a_revoked_key_stops_working_at_once(keyed: KeyedServer) -> None:
    key = keyed.create_key("temporary")
    listed = keyed.apikey("list")
    assert listed.returncode == 0
    line = next(line for line in listed.stdout.splitlines() if " temporary " in line)
    key_id = line.split()[0]
    assert key not in listed.stdout and "active" in line
    async with httpx.AsyncClient(base_url=keyed.server.url, timeout=30) as http:
        headers = {"x-api-key": key}
        assert (await http.post("/threads/search", json={}, headers=headers)).status_code == 200
        revoked = keyed.apikey("revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        assert (await http.post("/threads/search", json={}, headers=headers)).status_code == 401
    assert "revoked" in keyed.apikey("list").stdout
    again = keyed.apikey("revoke", key_id)
    assert again.returncode == 1 and again.stderr.startswith("stead: error:")


def test_only_a_hash_of_each_key_is_stored(keyed: KeyedServer) -> None:
    key = keyed.create_key("stored")
    database_uri = keyed.env.get("DATABASE_URI")
    if database_uri is None:
        assert keyed.server.data_dir is not None
        with sqlite3.connect(keyed.server.data_dir / "stead.sqlite") as conn:
            rows = conn.execute("SELECT * FROM api_key").fetchall()
    else:
        with psycopg.connect(database_uri) as conn:
            rows = conn.execute("SELECT * FROM api_key").fetchall()
    stored = repr(rows)
    assert "stored" in stored and key not in stored and key[6:] not in stored


async def test_the_openapi_document_names_the_key_header(keyed: KeyedServer) -> None:
    key = keyed.create_key("docs")
    async with httpx.AsyncClient(base_url=keyed.server.url, timeout=30) as http:
        assert (await http.get("/openapi.json")).status_code == 401
        document = (await http.get("/openapi.json", headers={"x-api-key": key})).json()
    scheme = document["components"]["securitySchemes"]["ApiKeyAuth"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert document["security"] == [{"ApiKeyAuth": []}]
    assert document["paths"]["/ok"]["get"]["security"] == []


async def test_keys_can_be_required_from_the_environment(tmp_path: Path) -> None:
    config = _write_config(tmp_path, None)
    with stead_server(config, env={"STEAD_AUTH_API_KEYS": "true"}) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            assert (await http.post("/threads/search", json={})).status_code == 401
            assert (await http.get("/ok")).status_code == 200
