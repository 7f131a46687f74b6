"""Custom auth and tenant isolation: two users and an admin against every endpoint that reads or
writes a tenant resource, with handlers written the way the LangGraph docs show
(tests/graphs/auth.py). On the session's runtime, so the filters run as SQLite and as PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from langgraph_sdk import get_client

from tests.conftest import GRAPHS_DIR
from tests.support.postgres import session_runtime_env
from tests.support.protocol import command, ended, event_stream, new_thread_id, socket
from tests.support.servers import StartedServer, stead_server

AGENT = GRAPHS_DIR / "agent.py"
TOKENS = {"alice": "alice-token", "bob": "bob-token", "admin": "admin-token"}
EVERY_SECOND = "* * * * * *"
NEVER = "0 0 1 1 *"


def write_config(tmp: Path, auth: dict[str, Any]) -> Path:
    config = tmp / "langgraph.json"
    graphs = {
        "echo": f"{AGENT}:echo",
        "slow": f"{AGENT}:slow",
        "whoami": f"{GRAPHS_DIR / 'whoami.py'}:graph",
    }
    config.write_text(json.dumps({"graphs": graphs, "auth": auth}))
    return config


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    config = write_config(
        tmp_path_factory.mktemp("auth"), {"path": f"{GRAPHS_DIR / 'auth.py'}:auth"}
    )
    with contextlib.ExitStack() as stack:
        env = {"CRON_SCHEDULER_SLEEP_TIME": "0.2", **session_runtime_env(stack, config)}
        yield stack.enter_context(stead_server(config, env=env))


@pytest.fixture
async def as_user(auth_server: StartedServer) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            name: await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=auth_server.url,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
            )
            for name, token in TOKENS.items()
        }
        yield clients


@dataclass
class World:
    """What alice owns; bob owns a thread of his own."""

    thread_id: str
    run_id: str
    checkpoint_id: str
    assistant_id: str
    cron_id: str
    bob_thread_id: str


@pytest.fixture
async def world(as_user: dict[str, httpx.AsyncClient]) -> World:
    alice, bob = as_user["alice"], as_user["bob"]
    thread = (await alice.post("/threads", json={"metadata": {"topic": "isolation"}})).json()
    thread_id = thread["thread_id"]
    run = await alice.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": "echo", "input": {"text": "hi"}}
    )
    run_id = run.json()["run_id"]
    await alice.get(f"/threads/{thread_id}/runs/{run_id}/join")
    state = (await alice.get(f"/threads/{thread_id}/state")).json()
    assistant = await alice.post("/assistants", json={"graph_id": "echo", "name": "alice's"})
    cron = await alice.post(
        f"/threads/{thread_id}/runs/crons",
        json={"assistant_id": "echo", "schedule": NEVER, "enabled": False},
    )
    bob_thread = (await bob.post("/threads", json={})).json()
    return World(
        thread_id=thread_id,
        run_id=run_id,
        checkpoint_id=state["checkpoint"]["checkpoint_id"],
        assistant_id=assistant.json()["assistant_id"],
        cron_id=cron.json()["cron_id"],
        bob_thread_id=bob_thread["thread_id"],
    )


# (method, path, json body) on alice's resources, and the status each user gets.
# Alice owns them, bob must not see that they exist, the admin may do anything.
MATRIX: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/threads/{thread_id}", None, {"alice": 200, "bob": 404, "admin": 200}),
    ("PATCH", "/threads/{thread_id}", {"metadata": {"x": 1}}, {"bob": 404, "alice": 200}),
    ("POST", "/threads/{thread_id}/copy", None, {"alice": 200, "bob": 404, "admin": 200}),
    ("GET", "/threads/{thread_id}/state", None, {"alice": 200, "bob": 404, "admin": 200}),
    ("GET", "/threads/{thread_id}/state/{checkpoint_id}", None, {"alice": 200, "bob": 404}),
    (
        "POST",
        "/threads/{thread_id}/state/checkpoint",
        {"checkpoint": {"checkpoint_id": "{checkpoint_id}"}},
        {"alice": 200, "bob": 404, "admin": 200},
    ),
    ("POST", "/threads/{thread_id}/state", {"values": {"text": "x"}}, {"bob": 404, "alice": 200}),
    ("GET", "/threads/{thread_id}/history", None, {"alice": 200, "bob": 404, "admin": 200}),
    ("POST", "/threads/{thread_id}/history", {}, {"alice": 200, "bob": 404, "admin": 200}),
    ("GET", "/threads/{thread_id}/storage", None, {"alice": 200, "bob": 404, "admin": 200}),
    ("GET", "/threads/{thread_id}/runs", None, {"alice": 200, "bob": 404, "admin": 200}),
    ("GET", "/threads/{thread_id}/runs/{run_id}", None, {"alice": 200, "bob": 404, "admin": 200}),
    ("GET", "/threads/{thread_id}/runs/{run_id}/join", None, {"alice": 200, "bob": 404}),
    ("GET", "/threads/{thread_id}/runs/{run_id}/stream", None, {"alice": 200, "bob": 404}),
    ("POST", "/threads/{thread_id}/runs/{run_id}/cancel", None, {"bob": 404}),
    ("DELETE", "/threads/{thread_id}/runs/{run_id}", None, {"bob": 404}),
    ("DELETE", "/threads/{thread_id}", None, {"bob": 404}),
    ("GET", "/threads/{thread_id}/stream", None, {"bob": 404}),
    (
        "POST",
        "/threads/{thread_id}/runs",
        {"assistant_id": "echo", "input": {"text": "x"}},
        {"alice": 200, "bob": 404, "admin": 200},
    ),
    (
        "POST",
        "/threads/{thread_id}/runs/wait",
        {"assistant_id": "echo", "input": {"text": "x"}},
        {"alice": 200, "bob": 404, "admin": 200},
    ),
    (
        "POST",
        "/threads/{thread_id}/runs/stream",
        {"assistant_id": "echo", "input": {"text": "x"}},
        {"alice": 200, "bob": 404, "admin": 200},
    ),
    (
        "POST",
        "/threads/{thread_id}/runs/crons",
        {"assistant_id": "echo", "schedule": NEVER, "enabled": False},
        {"alice": 200, "bob": 404, "admin": 200},
    ),
    (
        "POST",
        "/runs/cancel",
        {"thread_id": "{thread_id}", "run_ids": ["{run_id}"]},
        {"bob": 404},
    ),
    # Bob's own thread, alice's assistant: the run is refused as if the assistant did not exist.
    (
        "POST",
        "/threads/{bob_thread_id}/runs/wait",
        {"assistant_id": "{assistant_id}", "input": {"text": "x"}},
        {"bob": 404},
    ),
    (
        "POST",
        "/runs/batch",
        [{"assistant_id": "{assistant_id}", "input": {"text": "x"}}],
        {"bob": 404, "alice": 200},
    ),
    (
        "POST",
        "/runs/crons",
        {"assistant_id": "{assistant_id}", "schedule": NEVER, "enabled": False},
        {"bob": 404, "alice": 200},
    ),
    ("GET", "/assistants/{assistant_id}", None, {"alice": 200, "bob": 404, "admin": 200}),
    ("PATCH", "/assistants/{assistant_id}", {"metadata": {"y": 1}}, {"bob": 404, "alice": 200}),
    ("GET", "/assistants/{assistant_id}/graph", None, {"alice": 200, "bob": 404, "admin": 200}),
    ("GET", "/assistants/{assistant_id}/schemas", None, {"alice": 200, "bob": 404}),
    ("GET", "/assistants/{assistant_id}/subgraphs", None, {"alice": 200, "bob": 404}),
    ("POST", "/assistants/{assistant_id}/versions", {}, {"alice": 200, "bob": 404, "admin": 200}),
    ("POST", "/assistants/{assistant_id}/latest", {"version": 1}, {"alice": 200, "bob": 404}),
    # Only admins delete assistants (the handler returns False for everyone else).
    ("DELETE", "/assistants/{assistant_id}", None, {"alice": 403, "bob": 403}),
    ("GET", "/runs/crons/{cron_id}", None, {"alice": 200, "bob": 404, "admin": 200}),
    ("PATCH", "/runs/crons/{cron_id}", {"schedule": NEVER}, {"alice": 200, "bob": 404}),
    # Only admins delete crons (the handler raises its own HTTPException for everyone else).
    ("DELETE", "/runs/crons/{cron_id}", None, {"alice": 403, "bob": 403}),
]


def _fill(template: Any, world: World) -> Any:
    text = json.dumps(template)
    for key, value in vars(world).items():
        text = text.replace("{" + key + "}", value)
    return json.loads(text)


async def test_isolation_matrix(as_user: dict[str, httpx.AsyncClient], world: World) -> None:
    mismatches = []
    for method, path, body, expected in MATRIX:
        for user, status in expected.items():
            response = await as_user[user].request(
                method, _fill(path, world), json=_fill(body, world) if body is not None else None
            )
            if response.status_code != status:
                mismatches.append(f"{user} {method} {path}: {response.status_code} != {status}")
            elif status == 404:
                assert "alice" not in response.text, response.text
    assert not mismatches, "\n".join(mismatches)
    # Bob's refused writes changed nothing: alice's resources are all still there, as they were.
    alice = as_user["alice"]
    thread = (await alice.get(f"/threads/{world.thread_id}")).json()
    assert thread["metadata"]["owner"] == "alice" and "x" in thread["metadata"]
    assert (await alice.get(f"/threads/{world.thread_id}/runs/{world.run_id}")).status_code == 200
    assert (await alice.get(f"/assistants/{world.assistant_id}")).status_code == 200
    assert (await alice.get(f"/runs/crons/{world.cron_id}")).status_code == 200


async def test_pruning_reaches_only_visible_threads(
    as_user: dict[str, httpx.AsyncClient], world: World
) -> None:
    body = {"thread_ids": [world.thread_id, world.bob_thread_id], "strategy": "delete"}
    pruned = await as_user["bob"].post("/threads/prune", json=body)
    assert pruned.json() == {"pruned_count": 1}
    assert (await as_user["alice"].get(f"/threads/{world.thread_id}")).status_code == 200
    assert (await as_user["bob"].get(f"/threads/{world.bob_thread_id}")).status_code == 404


async def test_cron_delete_detail_comes_from_the_handler(
    as_user: dict[str, httpx.AsyncClient], world: World
) -> None:
    refused = await as_user["alice"].delete(f"/runs/crons/{world.cron_id}")
    assert refused.json() == {"detail": "Only admins delete crons"}
    assert (await as_user["admin"].delete(f"/runs/crons/{world.cron_id}")).status_code == 204
    assert (await as_user["alice"].get(f"/runs/crons/{world.cron_id}")).status_code == 404


async def test_owners_delete_their_own(as_user: dict[str, httpx.AsyncClient], world: World) -> None:
    alice = as_user["alice"]
    path = f"/threads/{world.thread_id}/runs/{world.run_id}"
    assert (await alice.delete(path)).status_code == 204
    assert (await alice.delete(f"/threads/{world.thread_id}")).status_code == 204
    assert (await alice.get(f"/threads/{world.thread_id}")).status_code == 404
    assert (await as_user["admin"].delete(f"/assistants/{world.assistant_id}")).status_code == 204


async def test_searches_and_counts_keep_to_the_owner(
    as_user: dict[str, httpx.AsyncClient], world: World
) -> None:
    for user in ("alice", "bob"):
        client = as_user[user]
        threads = await client.post("/threads/search", json={"limit": 1000})
        owners = {thread["metadata"].get("owner") for thread in threads.json()}
        assert owners == {user}
        total = int(threads.headers["x-pagination-total"])
        assert total == len(threads.json())
        assert (await client.post("/threads/count", json={})).json() == total
        # Even naming alice's thread, or asking for her metadata, finds nothing of hers.
        named = await client.post("/threads/search", json={"ids": [world.thread_id]})
        assert len(named.json()) == (1 if user == "alice" else 0)
        forged = await client.post("/threads/search", json={"metadata": {"owner": "alice"}})
        assert all(t["metadata"]["owner"] == user for t in forged.json())
        assistants = (await client.post("/assistants/search", json={"limit": 1000})).json()
        assert {a["metadata"].get("owner") for a in assistants} <= {user}
        crons = (await client.post("/runs/crons/search", json={"limit": 1000})).json()
        assert {c["metadata"].get("owner") for c in crons} <= {user}
        crons_count = (await client.post("/runs/crons/count", json={})).json()
        assert crons_count == len(crons)
    admin_threads = (await as_user["admin"].post("/threads/search", json={"limit": 1000})).json()
    admin_owners = {thread["metadata"].get("owner") for thread in admin_threads}
    assert {"alice", "bob"} <= admin_owners


async def test_creating_stamps_the_owner_and_cannot_claim_another(
    as_user: dict[str, httpx.AsyncClient],
) -> None:
    alice, bob = as_user["alice"], as_user["bob"]
    claimed = (await alice.post("/threads", json={"metadata": {"owner": "bob"}})).json()
    assert claimed["metadata"]["owner"] == "alice"
    assert (await bob.get(f"/threads/{claimed['thread_id']}")).status_code == 404
    # The same id again: bob learns it is taken, not what it holds.
    taken = await bob.post("/threads", json={"thread_id": claimed["thread_id"]})
    assert taken.status_code == 409
    again = await bob.post(
        "/threads", json={"thread_id": claimed["thread_id"], "if_exists": "do_nothing"}
    )
    assert again.status_code == 409


async def test_a_run_that_creates_its_thread_gives_it_to_its_creator(
    as_user: dict[str, httpx.AsyncClient],
) -> None:
    alice, bob = as_user["alice"], as_user["bob"]
    thread_id = "7c0a86c3-9d3a-4c38-9a66-5a1b6c0f1e21"
    body = {"assistant_id": "echo", "input": {"text": "x"}, "if_not_exists": "create"}
    assert (await alice.post(f"/threads/{thread_id}/runs/wait", json=body)).status_code == 200
    assert (await alice.get(f"/threads/{thread_id}")).json()["metadata"]["owner"] == "alice"
    assert (await bob.get(f"/threads/{thread_id}")).status_code == 404
    # Bob cannot run on it by creating it either.
    assert (await bob.post(f"/threads/{thread_id}/runs/wait", json=body)).status_code == 404


async def test_bob_cannot_cancel_alices_running_run(
    as_user: dict[str, httpx.AsyncClient],
) -> None:
    alice, bob = as_user["alice"], as_user["bob"]
    thread_id = (await alice.post("/threads", json={})).json()["thread_id"]
    run = await alice.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": "slow", "input": {"seconds": 1}}
    )
    run_id = run.json()["run_id"]
    assert (await bob.post(f"/threads/{thread_id}/runs/{run_id}/cancel")).status_code == 404
    bulk = await bob.post("/runs/cancel", json={"thread_id": thread_id, "run_ids": [run_id]})
    assert bulk.status_code == 404
    everything = await bob.post("/runs/cancel", json={"status": "all"})
    assert everything.status_code in (204, 404)
    await alice.get(f"/threads/{thread_id}/runs/{run_id}/join")
    finished = (await alice.get(f"/threads/{thread_id}/runs/{run_id}")).json()
    assert finished["status"] == "success"


async def test_store_namespaces_are_rewritten_per_user(
    as_user: dict[str, httpx.AsyncClient],
) -> None:
    alice, bob, admin = as_user["alice"], as_user["bob"], as_user["admin"]
    put = {"namespace": ["prefs"], "key": "theme", "value": {"color": "dark"}}
    assert (await alice.put("/store/items", json=put)).status_code == 204
    params = {"namespace": "prefs", "key": "theme"}
    mine = (await alice.get("/store/items", params=params)).json()
    assert mine["namespace"] == ["alice", "prefs"] and mine["value"] == {"color": "dark"}
    assert (await bob.get("/store/items", params=params)).json() is None
    as_admin = await admin.get("/store/items", params={"namespace": "alice.prefs", "key": "theme"})
    assert as_admin.json()["value"] == {"color": "dark"}
    found = (await bob.post("/store/items/search", json={"namespace_prefix": []})).json()
    assert all(item["namespace"][0] == "bob" for item in found["items"])
    namespaces = (await bob.post("/store/namespaces", json={})).json()["namespaces"]
    assert all(namespace[0] == "bob" for namespace in namespaces)
    # Bob deleting "the same" item deletes in his own namespace: alice keeps hers.
    await bob.request("DELETE", "/store/items", json={"namespace": ["prefs"], "key": "theme"})
    assert (await alice.get("/store/items", params=params)).json() is not None


async def test_the_graph_sees_who_started_the_run(
    as_user: dict[str, httpx.AsyncClient],
) -> None:
    forged = {"langgraph_auth_user_id": "admin", "langgraph_auth_permissions": ["admin"]}
    result = await as_user["alice"].post(
        "/runs/wait",
        json={"assistant_id": "whoami", "input": {}, "config": {"configurable": forged}},
    )
    values = result.json()
    assert values["user_id"] == "alice"
    assert values["permissions"] == ["write"]
    assert values["user"]["identity"] == "alice" and values["user"]["org_id"] == "acme"


async def test_a_cron_runs_as_its_creator(as_user: dict[str, httpx.AsyncClient]) -> None:
    alice = as_user["alice"]
    thread_id = (await alice.post("/threads", json={})).json()["thread_id"]
    cron = await alice.post(
        f"/threads/{thread_id}/runs/crons",
        json={"assistant_id": "whoami", "schedule": EVERY_SECOND, "input": {}},
    )
    assert cron.json()["user_id"] == "alice"
    values: dict[str, Any] = {}
    for _ in range(100):
        values = (await alice.get(f"/threads/{thread_id}/state")).json()["values"]
        if values:
            break
        await asyncio.sleep(0.1)
    await alice.patch(f"/runs/crons/{cron.json()['cron_id']}", json={"enabled": False})
    assert values["user_id"] == "alice" and values["permissions"] == ["write"]


async def test_requests_without_a_valid_token_are_refused(auth_server: StartedServer) -> None:
    protected = [
        ("POST", "/threads/search", {}),
        ("POST", "/assistants/search", {}),
        ("POST", "/runs/wait", {"assistant_id": "echo", "input": {}}),
        ("POST", "/runs/stream", {"assistant_id": "echo", "input": {}}),
        ("POST", "/runs/crons/search", {}),
        ("POST", "/store/items/search", {}),
        ("GET", "/info", None),
        ("GET", "/docs", None),
    ]
    async with httpx.AsyncClient(base_url=auth_server.url, timeout=30) as anonymous:
        for method, path, body in protected:
            response = await anonymous.request(method, path, json=body)
            assert response.status_code == 401, path
            assert response.json() == {"detail": "Missing bearer token"}
        wrong = await anonymous.post(
            "/threads/search", json={}, headers={"Authorization": "Bearer nope"}
        )
        assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid token"})
        for path in ("/ok", "/health"):
            assert (await anonymous.get(path)).status_code == 200


async def test_the_sdk_works_with_its_own_headers(auth_server: StartedServer) -> None:
    client = get_client(url=auth_server.url, headers={"Authorization": "Bearer alice-token"})
    try:
        thread = await client.threads.create()
        assert thread["metadata"]["owner"] == "alice"
        result = await client.runs.wait(thread["thread_id"], "whoami", input={})
        assert isinstance(result, dict) and result["user_id"] == "alice"
        parts = [
            part
            async for part in client.runs.stream(thread["thread_id"], "echo", input={"text": "s"})
        ]
        assert parts[-1].data == {"text": "s"}
    finally:
        await client.http.client.aclose()


def test_tokens_never_reach_the_log(auth_server: StartedServer) -> None:
    log = auth_server.log()
    assert "alice-token" not in log and "bob-token" not in log and "admin-token" not in log


@pytest.fixture(scope="module")
def partial_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    config = write_config(
        tmp_path_factory.mktemp("partial"),
        {"path": f"{GRAPHS_DIR / 'auth_threads_only.py'}:auth"},
    )
    with stead_server(config) as started:
        yield started


async def test_an_action_no_handler_covers_is_refused(partial_server: StartedServer) -> None:
    headers = {"Authorization": "Bearer anyone"}
    async with httpx.AsyncClient(base_url=partial_server.url, headers=headers) as client:
        assert (await client.post("/threads", json={})).status_code == 200
        refused = await client.post("/assistants/search", json={})
        assert refused.status_code == 403
        assert refused.json() == {"detail": "No authorization handler covers assistants.search"}
    assert "no handler covers assistants.create" in partial_server.log()


async def test_protocol_streams_and_commands_keep_to_the_owner(
    auth_server: StartedServer, as_user: dict[str, httpx.AsyncClient]
) -> None:
    alice, bob = as_user["alice"], as_user["bob"]
    thread_id = new_thread_id()
    # A stream may open before run.start creates the thread only where nothing filters threads.
    early = await alice.post(f"/threads/{thread_id}/stream/events", json={"channels": ["values"]})
    assert early.status_code == 404
    started = await command(alice, thread_id, "run.start", {"assistant_id": "whoami", "input": {}})
    assert started["type"] == "success", started
    async with event_stream(alice, thread_id, channels=["lifecycle", "values"]) as stream:
        events = await stream.until(ended())
    assert events[-1].data["params"]["data"]["event"] == "completed"
    values = [event.data for event in events if event.event == "values"]
    assert values[-1]["params"]["data"]["user_id"] == "alice"

    refused = await bob.post(f"/threads/{thread_id}/stream/events", json={"channels": ["values"]})
    assert refused.status_code == 404
    for method, params in (
        ("run.start", {"assistant_id": "echo", "input": {"text": "mine now"}}),
        ("input.respond", {"interrupt_id": "x", "response": 1}),
        ("agent.getTree", {}),
    ):
        answer = await command(bob, thread_id, method, params)
        assert answer["type"] == "error", (method, answer)
    runs = (await alice.get(f"/threads/{thread_id}/runs")).json()
    assert len(runs) == 1

    headers = {"Authorization": "Bearer bob-token"}
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with socket(auth_server.url, thread_id, headers) as ws:
            await ws.connection.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404
    with pytest.raises(websockets.ConnectionClosed) as anonymous:
        async with socket(auth_server.url, thread_id) as ws:
            await ws.connection.recv()
    assert anonymous.value.rcvd is not None and anonymous.value.rcvd.code == 4401
    no_token = await httpx.AsyncClient(base_url=auth_server.url).post(
        f"/threads/{thread_id}/commands", json={"id": 1, "method": "agent.getTree"}
    )
    assert no_token.status_code == 401

    async with socket(auth_server.url, thread_id, {"Authorization": "Bearer alice-token"}) as ws:
        answer = await ws.send("subscription.subscribe", {"channels": ["lifecycle"]})
        assert answer["type"] == "success" and answer["result"]["replayed_events"] == 2
        tree = await ws.send("agent.getTree", {})
        assert tree["result"]["tree"]["status"] == "completed"
