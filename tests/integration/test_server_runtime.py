"""Graph factories that take `runtime: ServerRuntime`: alone or beside config, in either order,
annotated with the real type or with strings that only type checkers resolve. Each factory
records in the store why and for whom it was called (tests/graphs/server_runtime.py), so every
request that builds the graph shows the runtime it passed. On the session's runtime.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from stead.ids import system_assistant_id
from tests.conftest import GRAPHS_DIR
from tests.support.postgres import session_runtime_env
from tests.support.servers import StartedServer, free_port, stead_server
from tests.support.worker import stead_worker

RUNTIME = GRAPHS_DIR / "server_runtime.py"
DEFERRED = GRAPHS_DIR / "server_runtime_deferred.py"
GRAPHS = {
    "runtime_only": f"{RUNTIME}:runtime_only",
    "runtime_then_config": f"{RUNTIME}:runtime_then_config",
    "deferred_runtime_only": f"{DEFERRED}:runtime_only",
    "deferred_config_then_runtime": f"{DEFERRED}:config_then_runtime",
    "deferred_runtime_then_config": f"{DEFERRED}:runtime_then_config",
}
TAKES_CONFIG = {
    "runtime_then_config",
    "deferred_config_then_runtime",
    "deferred_runtime_then_config",
}
CALLS = ["factory_calls"]
TOKENS = {"alice": "alice-token", "bob": "bob-token", "admin": "admin-token"}
AUTH = {"path": f"{GRAPHS_DIR / 'auth.py'}:auth"}


def write_config(tmp: Path, graphs: dict[str, str], **extra: Any) -> Path:
    config = tmp / "langgraph.json"
    config.write_text(json.dumps({"dependencies": [str(GRAPHS_DIR)], "graphs": graphs, **extra}))
    return config


@contextlib.contextmanager
def started(config: Path) -> Iterator[StartedServer]:
    with contextlib.ExitStack() as stack:
        yield stack.enter_context(stead_server(config, env=session_runtime_env(stack, config)))


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    with started(write_config(tmp_path_factory.mktemp("runtime"), GRAPHS)) as server:
        yield server


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    with started(write_config(tmp_path_factory.mktemp("auth"), GRAPHS, auth=AUTH)) as server:
        yield server


@pytest.fixture
async def client(open_server: StartedServer) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=open_server.url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.http.client.aclose()


@pytest.fixture
async def as_user(auth_server: StartedServer) -> AsyncIterator[dict[str, LangGraphClient]]:
    clients = {
        name: get_client(
            url=auth_server.url, api_key=None, headers={"Authorization": f"Bearer {token}"}
        )
        for name, token in TOKENS.items()
    }
    try:
        yield clients
    finally:
        for sdk in clients.values():
            await sdk.http.client.aclose()


async def last_call(client: LangGraphClient, graph_id: str) -> dict[str, Any]:
    """What the factory of `graph_id` was told the last time the server called it; forgotten
    once read, so the next request's call cannot be confused with this one."""
    item = await client.store.get_item(CALLS, graph_id)
    assert item is not None, f"the factory of {graph_id} recorded no call"
    await client.store.delete_item(CALLS, graph_id)
    return dict(item["value"])


async def run_once(client: LangGraphClient, graph_id: str) -> tuple[str, dict[str, Any]]:
    thread = await client.threads.create()
    result = await client.runs.wait(
        thread["thread_id"],
        graph_id,
        input={"text": "hi"},
        config={"configurable": {"suffix": "!"}},
    )
    assert isinstance(result, dict)
    return thread["thread_id"], result


@pytest.mark.parametrize("graph_id", sorted(GRAPHS))
async def test_a_run_builds_its_graph_with_the_execution_runtime(
    client: LangGraphClient, graph_id: str
) -> None:
    _, result = await run_once(client, graph_id)
    assert result == {
        "text": "hi echoed",
        "access_context": "threads.create_run",
        "is_for_execution": True,
        "user": None,
        # Without a context, a run's context is its configurable, as on the official server.
        "context": {"suffix": "!"},
        "suffix": "!" if graph_id in TAKES_CONFIG else None,
    }
    # The factory wrote to runtime.store: the server's store, which the API reads.
    assert (await last_call(client, graph_id))["access_context"] == "threads.create_run"


@pytest.mark.parametrize("graph_id", ["runtime_only", "deferred_runtime_then_config"])
async def test_the_execution_runtime_carries_the_runs_context(
    client: LangGraphClient, graph_id: str
) -> None:
    thread = await client.threads.create()
    context = {"tone": "dry", "depth": 2}
    result = await client.runs.wait(
        thread["thread_id"], graph_id, input={"text": "hi"}, context=context
    )
    assert isinstance(result, dict)
    assert result["context"] == context


@pytest.mark.parametrize("graph_id", sorted(GRAPHS))
async def test_state_reads_and_updates_use_a_read_runtime(
    client: LangGraphClient, graph_id: str
) -> None:
    thread_id, _ = await run_once(client, graph_id)
    await client.store.delete_item(CALLS, graph_id)

    state = await client.threads.get_state(thread_id)
    assert state["values"]["text"] == "hi echoed"
    read = await last_call(client, graph_id)
    assert read["access_context"] == "threads.read"
    assert read["is_for_execution"] is False and read["context"] is None

    history = await client.threads.get_history(thread_id)
    assert history
    assert (await last_call(client, graph_id))["access_context"] == "threads.read"

    await client.threads.update_state(thread_id, {"text": "edited"}, as_node="echo")
    update = await last_call(client, graph_id)
    assert update["access_context"] == "threads.update"
    assert update["is_for_execution"] is False


async def test_thread_created_with_supersteps_updates_through_a_read_runtime(
    client: LangGraphClient,
) -> None:
    await client.threads.create(
        graph_id="deferred_config_then_runtime",
        supersteps=[{"updates": [{"values": {"text": "seed"}, "as_node": "echo"}]}],
    )
    call = await last_call(client, "deferred_config_then_runtime")
    assert call["access_context"] == "threads.update"


@pytest.mark.parametrize("graph_id", sorted(GRAPHS))
async def test_introspection_uses_the_assistants_read_runtime(
    client: LangGraphClient, graph_id: str
) -> None:
    assistant_id = system_assistant_id(graph_id)
    schemas = await client.assistants.get_schemas(assistant_id)
    assert "text" in schemas["state_schema"]["properties"]
    assert (await last_call(client, graph_id))["access_context"] == "assistants.read"

    drawing = await client.assistants.get_graph(assistant_id)
    assert {node["id"] for node in drawing["nodes"]} >= {"echo"}
    assert (await last_call(client, graph_id))["access_context"] == "assistants.read"

    assert await client.assistants.get_subgraphs(assistant_id) == {}
    call = await last_call(client, graph_id)
    assert call["access_context"] == "assistants.read"
    assert call["is_for_execution"] is False


@pytest.mark.parametrize("graph_id", ["runtime_only", "deferred_config_then_runtime"])
async def test_the_factory_sees_the_authenticated_user(
    as_user: dict[str, LangGraphClient], graph_id: str
) -> None:
    alice, bob, admin = as_user["alice"], as_user["bob"], as_user["admin"]
    alice_user = {"identity": "alice", "permissions": ["write"]}
    thread = await alice.threads.create()
    thread_id = thread["thread_id"]

    result = await alice.runs.wait(thread_id, graph_id, input={"text": "hi"})
    assert isinstance(result, dict)
    assert result["user"] == alice_user
    # The calls are recorded outside any user's namespace: the admin reads them unrewritten.
    assert (await last_call(admin, graph_id))["user"] == alice_user

    await alice.threads.get_state(thread_id)
    read = await last_call(admin, graph_id)
    assert (read["access_context"], read["user"]) == ("threads.read", alice_user)

    await alice.threads.update_state(thread_id, {"text": "edited"}, as_node="echo")
    update = await last_call(admin, graph_id)
    assert (update["access_context"], update["user"]) == ("threads.update", alice_user)

    assistant = await bob.assistants.create(graph_id)
    await bob.assistants.get_schemas(assistant["assistant_id"])
    schemas = await last_call(admin, graph_id)
    bob_user = {"identity": "bob", "permissions": ["write"]}
    assert (schemas["access_context"], schemas["user"]) == ("assistants.read", bob_user)


def test_a_separate_worker_gives_the_factory_the_user_who_created_the_run(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"runtime_only": GRAPHS["runtime_only"]}, auth=AUTH)
    data_dir = tmp_path / "data"
    api_only = {"N_JOBS_PER_WORKER": "0"}
    with stead_server(config, data_dir, env=api_only) as api, stead_worker(config, data_dir):
        alice = httpx.Client(base_url=api.url, headers={"Authorization": "Bearer alice-token"})
        with alice:
            thread_id = alice.post("/threads", json={}).json()["thread_id"]
            body = {"assistant_id": "runtime_only", "input": {"text": "hi"}}
            run = alice.post(f"/threads/{thread_id}/runs", json=body).json()
            deadline = time.monotonic() + 20
            while alice.get(f"/threads/{thread_id}/runs/{run['run_id']}").json()["status"] in (
                "pending",
                "running",
            ):
                assert time.monotonic() < deadline, "the worker never finished the run"
                time.sleep(0.1)
            values = alice.get(f"/threads/{thread_id}/state").json()["values"]
    assert values["access_context"] == "threads.create_run"
    assert values["user"] == {"identity": "alice", "permissions": ["write"]}


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        (
            "def make_graph(config, options):\n    pass\n",
            "needs exactly one annotated ServerRuntime",
        ),
        (
            "from langgraph_sdk.runtime import ServerRuntime\n"
            "def make_graph(first: ServerRuntime, second: ServerRuntime):\n    pass\n",
            "needs exactly one annotated ServerRuntime",
        ),
        (
            "def make_graph(config, runtime, extra):\n    pass\n",
            "takes at most two parameters",
        ),
    ],
)
def test_a_factory_the_server_cannot_call_stops_it_with_one_line(
    tmp_path: Path, factory: str, expected: str
) -> None:
    (tmp_path / "bad.py").write_text(factory)
    config = write_config(tmp_path, {"bad": "./bad.py:make_graph"})
    result = subprocess.run(
        [sys.executable, "-m", "stead", "run", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stead: error: graph 'bad' (./bad.py:make_graph)")
    assert expected in lines[0]
