"""TTLs and pruning: thread TTLs and their sweeper, store item TTLs, `POST /threads/prune` and
`GET /threads/{id}/storage`.

Two dedicated servers with tiny TTLs (fractions of a minute): `fast` sweeps every 0.2 s through
`STEAD_TTL_SWEEP_SECONDS` and has no default TTLs; `defaults` sets `checkpointer.ttl` and
`store.ttl` defaults and sweep intervals in langgraph.json. Waits poll with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.conftest import GRAPHS_DIR
from tests.support.servers import HOST, StartedServer, stead_server

GRAPHS = ("agent", "echo", "steps", "slow", "hitl", "nested")
TTL_KEYS = {"strategy", "ttl_minutes", "expires_at"}


def write_config(folder: Path, **sections: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    graphs = {name: f"{GRAPHS_DIR / 'agent.py'}:{_variable(name)}" for name in GRAPHS}
    path = folder / "langgraph.json"
    path.write_text(json.dumps({"graphs": graphs, **sections}))
    return path


def _variable(graph_id: str) -> str:
    return "graph" if graph_id == "agent" else graph_id


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    config = write_config(tmp_path_factory.mktemp("fast"), checkpointer={"ttl": {}})
    with stead_server(config, env={"STEAD_TTL_SWEEP_SECONDS": "0.2"}) as started:
        yield started


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    config = write_config(
        tmp_path_factory.mktemp("defaults"),
        checkpointer={
            "ttl": {"strategy": "delete", "default_ttl": 0.02, "sweep_interval_minutes": 0.005}
        },
        store={
            "ttl": {"default_ttl": 0.03, "sweep_interval_minutes": 0.005, "refresh_on_read": False}
        },
    )
    with stead_server(config, env={"STEAD_TTL_SWEEP_SECONDS": ""}) as started:
        yield started


@pytest.fixture
async def api(fast: StartedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fast.url, timeout=30) as raw:
        yield raw


@pytest.fixture
async def sdk(fast: StartedServer) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=fast.url, api_key=None)
    try:
        yield client
    finally:
        await client.http.client.aclose()


@pytest.fixture
async def defaults_api(defaults: StartedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=defaults.url, timeout=30) as raw:
        yield raw


async def eventually(
    check: Callable[[], Awaitable[bool]],
    what: str,
    timeout: float = 15.0,
    *,
    meanwhile: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """Poll `check` until it holds; `meanwhile` runs between polls (to keep something alive)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        if meanwhile is not None:
            await meanwhile()
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting until {what}")


async def thread_gone(api: httpx.AsyncClient, thread_id: str) -> bool:
    return (await api.get(f"/threads/{thread_id}")).status_code == 404


async def create_thread(api: httpx.AsyncClient, **body: Any) -> str:
    response = await api.post("/threads", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["thread_id"])


async def wait_run(api: httpx.AsyncClient, thread_id: str, graph: str, **body: Any) -> Any:
    response = await api.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": graph, **body}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def history(api: httpx.AsyncClient, thread_id: str) -> list[dict[str, Any]]:
    response = await api.post(f"/threads/{thread_id}/history", json={"limit": 100})
    assert response.status_code == 200, response.text
    return list(response.json())


async def storage(api: httpx.AsyncClient, thread_id: str) -> dict[str, Any]:
    response = await api.get(f"/threads/{thread_id}/storage")
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- thread TTL: create, patch, ?include=ttl ---------------------------------------------------


async def test_include_ttl_shows_the_ttl_only_when_asked(
    sdk: LangGraphClient, api: httpx.AsyncClient
) -> None:
    thread = await sdk.threads.create(ttl={"ttl": 60, "strategy": "keep_latest"})
    tid = thread["thread_id"]
    assert "ttl" not in thread
    assert "ttl" not in (await api.get(f"/threads/{tid}")).json()
    ttl = (await sdk.threads.get(tid, include=["ttl"]))["ttl"]
    assert set(ttl) == TTL_KEYS
    assert ttl["strategy"] == "keep_latest"
    assert ttl["ttl_minutes"] == 60
    assert ttl["expires_at"] > thread["created_at"]

    copy = await sdk.threads.copy(tid)
    copied = (await api.get(f"/threads/{copy['thread_id']}?include=ttl")).json()["ttl"]
    assert (copied["strategy"], copied["ttl_minutes"]) == ("keep_latest", 60)

    plain = await sdk.threads.create()
    assert "ttl" not in (await api.get(f"/threads/{plain['thread_id']}?include=ttl")).json()


async def test_patch_sets_and_replaces_the_ttl(
    sdk: LangGraphClient, api: httpx.AsyncClient
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.threads.update(tid, metadata={"k": "v"}, ttl=30)
    ttl = (await api.get(f"/threads/{tid}", params={"include": "ttl"})).json()["ttl"]
    assert (ttl["ttl_minutes"], ttl["strategy"]) == (30, "delete")

    response = await api.patch(
        f"/threads/{tid}", json={"ttl": {"ttl": 90, "strategy": "keep_latest"}}
    )
    assert response.status_code == 200
    assert response.json()["metadata"] == {"k": "v"}
    later = (await api.get(f"/threads/{tid}", params={"include": "ttl"})).json()["ttl"]
    assert (later["ttl_minutes"], later["strategy"]) == (90, "keep_latest")
    assert later["expires_at"] > ttl["expires_at"]

    # A bare number of minutes is accepted too (the SDK always sends the object form).
    assert (await api.patch(f"/threads/{tid}", json={"ttl": 5})).status_code == 200
    assert (await api.get(f"/threads/{tid}?include=ttl")).json()["ttl"]["ttl_minutes"] == 5


@pytest.mark.parametrize(
    "ttl", [{"ttl": 5, "strategy": "forever"}, {"strategy": "delete"}, {"ttl": 0}, -1, "soon"]
)
async def test_invalid_ttls_are_refused(api: httpx.AsyncClient, ttl: Any) -> None:
    assert (await api.post("/threads", json={"ttl": ttl})).status_code == 422
    tid = await create_thread(api)
    assert (await api.patch(f"/threads/{tid}", json={"ttl": ttl})).status_code == 422


# --- thread TTL: the sweeper -------------------------------------------------------------------


async def test_expired_thread_is_deleted_with_its_runs_and_checkpoints(
    sdk: LangGraphClient, api: httpx.AsyncClient
) -> None:
    thread = await sdk.threads.create(ttl={"ttl": 0.02, "strategy": "delete"})
    tid = thread["thread_id"]
    await wait_run(api, tid, "steps", input={})
    assert len(await history(api, tid)) > 1

    await eventually(lambda: thread_gone(api, tid), "the expired thread is deleted")
    assert (await api.get(f"/threads/{tid}/runs")).status_code == 404
    # Re-created under the same id, the thread starts empty: the checkpoints went too.
    await create_thread(api, thread_id=tid, metadata={"graph_id": "steps"})
    assert await history(api, tid) == []
    assert (await storage(api, tid))["checkpoints"]["count"] == 0


async def test_keep_latest_keeps_the_thread_with_its_latest_checkpoint(
    api: httpx.AsyncClient,
) -> None:
    tid = await create_thread(api, ttl={"ttl": 0.03, "strategy": "keep_latest"})
    await wait_run(api, tid, "steps", input={})

    async def pruned() -> bool:
        return len(await history(api, tid)) == 1

    await eventually(pruned, "old checkpoints are pruned")
    state = (await api.get(f"/threads/{tid}/state")).json()
    assert state["values"] == {"steps": ["one", "two", "three"]}
    assert state["parent_checkpoint"] is None
    thread = (await api.get(f"/threads/{tid}?include=ttl")).json()
    assert thread["values"] == {"steps": ["one", "two", "three"]}
    assert thread["ttl"]["strategy"] == "keep_latest"
    assert thread["ttl"]["expires_at"] is None  # not swept again until the next activity

    # The pruned thread carries on from its latest state, and the activity re-arms its TTL.
    result = await wait_run(api, tid, "steps", input={})
    assert result["steps"] == ["one", "two", "three"] * 2
    rearmed = (await api.get(f"/threads/{tid}?include=ttl")).json()["ttl"]
    assert rearmed["expires_at"] is not None


async def test_a_busy_thread_is_not_swept_until_its_run_ends(api: httpx.AsyncClient) -> None:
    tid = await create_thread(api, ttl={"ttl": 0.01})
    created = await api.post(
        f"/threads/{tid}/runs", json={"assistant_id": "slow", "input": {"seconds": 2}}
    )
    run_id = created.json()["run_id"]
    # The run outlives the TTL many sweeps over; sweeping its thread would cancel it.
    joined = await api.get(f"/threads/{tid}/runs/{run_id}/join")
    assert joined.json() == {"seconds": 2, "done": True}
    runs = (await api.get(f"/threads/{tid}/runs")).json()
    assert [run["status"] for run in runs] == ["success"]

    await eventually(lambda: thread_gone(api, tid), "the thread is swept once idle")


async def test_activity_extends_the_ttl(api: httpx.AsyncClient) -> None:
    idle = await create_thread(api, ttl={"ttl": 0.03})
    active = await create_thread(api, ttl={"ttl": 0.03})
    turns = 0

    async def touch() -> None:
        # Runs and patches both count as activity.
        nonlocal turns
        turns += 1
        if turns % 2:
            await wait_run(api, active, "echo", input={"text": str(turns)})
        else:
            assert (
                await api.patch(f"/threads/{active}", json={"metadata": {"turn": turns}})
            ).status_code == 200

    await eventually(lambda: thread_gone(api, idle), "the idle thread expires", meanwhile=touch)
    assert (await api.get(f"/threads/{active}")).status_code == 200

    await eventually(lambda: thread_gone(api, active), "the active thread expires once left alone")


async def test_state_updates_are_activity(api: httpx.AsyncClient) -> None:
    idle = await create_thread(api, ttl={"ttl": 0.03}, metadata={"graph_id": "echo"})
    active = await create_thread(api, ttl={"ttl": 0.03}, metadata={"graph_id": "echo"})

    async def update_state() -> None:
        response = await api.post(f"/threads/{active}/state", json={"values": {"text": "x"}})
        assert response.status_code == 200, response.text

    await eventually(
        lambda: thread_gone(api, idle), "the idle thread expires", meanwhile=update_state
    )
    assert (await api.get(f"/threads/{active}")).status_code == 200


async def test_default_ttl_applies_to_threads_created_without_one(
    defaults_api: httpx.AsyncClient,
) -> None:
    api = defaults_api
    tid = await create_thread(api)
    ttl = (await api.get(f"/threads/{tid}?include=ttl")).json()["ttl"]
    assert (ttl["ttl_minutes"], ttl["strategy"]) == (0.02, "delete")
    explicit = await create_thread(api, ttl={"ttl": 60, "strategy": "keep_latest"})
    ttl = (await api.get(f"/threads/{explicit}?include=ttl")).json()["ttl"]
    assert (ttl["ttl_minutes"], ttl["strategy"]) == (60, "keep_latest")

    await wait_run(api, tid, "agent", input={"messages": [{"role": "user", "content": "hi"}]})
    await eventually(lambda: thread_gone(api, tid), "the thread expires on the default TTL")
    assert (await api.get(f"/threads/{explicit}")).status_code == 200


async def test_default_ttl_applies_to_threads_a_run_creates(
    defaults_api: httpx.AsyncClient,
) -> None:
    api = defaults_api
    tid = str(uuid.uuid4())
    response = await api.post(
        f"/threads/{tid}/runs/wait",
        json={"assistant_id": "echo", "input": {"text": "x"}, "if_not_exists": "create"},
    )
    assert response.status_code == 200, response.text
    ttl = (await api.get(f"/threads/{tid}?include=ttl")).json()["ttl"]
    assert (ttl["ttl_minutes"], ttl["strategy"]) == (0.02, "delete")
    await eventually(lambda: thread_gone(api, tid), "the run-created thread expires")


# --- store item TTL ----------------------------------------------------------------------------


def _namespace() -> list[str]:
    return ["ttl", uuid.uuid4().hex]


async def put_item(api: httpx.AsyncClient, namespace: list[str], key: str, **extra: Any) -> None:
    body = {"namespace": namespace, "key": key, "value": {"key": key}, **extra}
    response = await api.put("/store/items", json=body)
    assert response.status_code == 204, response.text


async def get_item(
    api: httpx.AsyncClient, namespace: list[str], key: str, **params: Any
) -> dict[str, Any] | None:
    response = await api.get(
        "/store/items", params={"namespace": ".".join(namespace), "key": key, **params}
    )
    assert response.status_code == 200, response.text
    item: dict[str, Any] | None = response.json()
    return item


async def item_gone(api: httpx.AsyncClient, namespace: list[str], key: str) -> bool:
    return await get_item(api, namespace, key, refresh_ttl="false") is None


async def test_store_item_with_a_ttl_expires(sdk: LangGraphClient, api: httpx.AsyncClient) -> None:
    namespace = _namespace()
    await sdk.store.put_item(namespace, "short", {"v": 1}, ttl=0.02)
    await put_item(api, namespace, "forever")
    assert await sdk.store.get_item(namespace, "short", refresh_ttl=False) is not None

    await eventually(lambda: item_gone(api, namespace, "short"), "the item expires")
    assert await get_item(api, namespace, "forever") is not None


async def test_reading_refreshes_the_ttl_by_default(api: httpx.AsyncClient) -> None:
    namespace = _namespace()
    await put_item(api, namespace, "read", ttl=0.05)
    await put_item(api, namespace, "unread", ttl=0.05)

    async def read() -> None:
        assert await get_item(api, namespace, "read") is not None

    await eventually(
        lambda: item_gone(api, namespace, "unread"), "the unread item expires", meanwhile=read
    )
    assert await get_item(api, namespace, "read") is not None


async def test_search_with_refresh_ttl_extends_the_ttl(api: httpx.AsyncClient) -> None:
    namespace = _namespace()
    await put_item(api, [*namespace, "searched"], "a", ttl=0.05)
    await put_item(api, [*namespace, "other"], "b", ttl=0.05)

    async def search() -> None:
        body = {"namespace_prefix": [*namespace, "searched"], "refresh_ttl": True}
        found = (await api.post("/store/items/search", json=body)).json()["items"]
        assert [item["key"] for item in found] == ["a"]

    await eventually(
        lambda: item_gone(api, [*namespace, "other"], "b"),
        "the other item expires",
        meanwhile=search,
    )
    assert await get_item(api, [*namespace, "searched"], "a", refresh_ttl="false") is not None


async def test_store_default_ttl_and_refresh_on_read_false(defaults_api: httpx.AsyncClient) -> None:
    api = defaults_api
    namespace = _namespace()
    await put_item(api, namespace, "defaulted")
    await put_item(api, namespace, "refreshed", ttl=0.05)
    await put_item(api, namespace, "read", ttl=0.05)

    async def read_both() -> None:
        # With refresh_on_read false a plain read leaves the TTL alone; refresh_ttl=true overrides.
        await get_item(api, namespace, "read")
        assert await get_item(api, namespace, "refreshed", refresh_ttl="true") is not None

    await eventually(
        lambda: item_gone(api, namespace, "defaulted"), "the default TTL expires the item"
    )
    await eventually(
        lambda: item_gone(api, namespace, "read"),
        "the plainly read item expires",
        meanwhile=read_both,
    )
    assert await get_item(api, namespace, "refreshed") is not None


# --- POST /threads/prune -----------------------------------------------------------------------


async def test_prune_delete(sdk: LangGraphClient, api: httpx.AsyncClient) -> None:
    first = await create_thread(api)
    second = await create_thread(api)
    kept = await create_thread(api)
    for tid in (first, second):
        await wait_run(api, tid, "steps", input={})
    missing = str(uuid.uuid4())

    result = await sdk.threads.prune([first, second, missing])
    assert result == {"pruned_count": 2}
    for tid in (first, second):
        assert await thread_gone(api, tid)
    assert (await api.get(f"/threads/{kept}")).status_code == 200


async def test_prune_keep_latest(sdk: LangGraphClient, api: httpx.AsyncClient) -> None:
    steps = await create_thread(api)
    await wait_run(api, steps, "steps", input={})
    await wait_run(api, steps, "steps", input={})
    waiting = await create_thread(api)
    interrupted = await wait_run(api, waiting, "hitl", input={"text": "hi"})
    assert interrupted["__interrupt__"]
    nested = await create_thread(api)
    await wait_run(api, nested, "nested", input={"text": "x"})
    before = await storage(api, nested)

    result = await sdk.threads.prune([steps, waiting, nested], strategy="keep_latest")
    assert result == {"pruned_count": 3}

    assert len(await history(api, steps)) == 1
    state = (await api.get(f"/threads/{steps}/state")).json()
    assert state["values"] == {"steps": ["one", "two", "three"] * 2}

    # The interrupted thread keeps its pending interrupt, and resuming it still works.
    assert len(await history(api, waiting)) == 1
    state = (await api.get(f"/threads/{waiting}/state")).json()
    assert state["next"] == ["ask"]
    assert state["interrupts"][0]["value"] == {"question": "approve?"}
    resumed = await wait_run(api, waiting, "hitl", command={"resume": "yes"})
    assert resumed["text"] == "hi:yes"

    # One checkpoint is left in each namespace (the subgraph's included).
    after = await storage(api, nested)
    assert 1 <= after["checkpoints"]["count"] < before["checkpoints"]["count"]
    assert len(await history(api, nested)) == 1
    assert (await api.get(f"/threads/{nested}/state")).json()["values"] == {
        "text": "x+parent+child"
    }


async def test_prune_keep_latest_skips_a_busy_thread(api: httpx.AsyncClient) -> None:
    tid = await create_thread(api)
    await wait_run(api, tid, "steps", input={})
    run = (
        await api.post(
            f"/threads/{tid}/runs", json={"assistant_id": "slow", "input": {"seconds": 1}}
        )
    ).json()
    body = {"thread_ids": [tid], "strategy": "keep_latest"}
    assert (await api.post("/threads/prune", json=body)).json() == {"pruned_count": 0}
    await api.get(f"/threads/{tid}/runs/{run['run_id']}/join")
    assert (await api.post("/threads/prune", json=body)).json() == {"pruned_count": 1}
    assert len(await history(api, tid)) == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"thread_ids": ["not-a-uuid"]},
        {"thread_ids": [], "strategy": "everything"},
    ],
)
async def test_prune_refuses_bad_bodies(api: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert (await api.post("/threads/prune", json=body)).status_code == 422


# --- GET /threads/{id}/storage -----------------------------------------------------------------


def assert_consistent(report: dict[str, Any], thread_id: str) -> None:
    assert report["thread_id"] == thread_id
    channels = report["channel_values"]
    by_channel = channels["by_channel"].values()
    assert channels["count"] == sum(entry["versions"] for entry in by_channel)
    assert channels["bytes"] == sum(entry["bytes"] for entry in by_channel)
    assert report["total_bytes"] == (
        report["checkpoints"]["bytes"] + channels["bytes"] + report["pending_writes"]["bytes"]
    )


async def test_storage_grows_with_runs_and_adds_up(api: httpx.AsyncClient) -> None:
    tid = await create_thread(api)
    empty = await storage(api, tid)
    assert empty == {
        "thread_id": tid,
        "total_bytes": 0,
        "checkpoints": {"count": 0, "bytes": 0},
        "channel_values": {"count": 0, "bytes": 0, "by_channel": {}},
        "pending_writes": {"count": 0, "bytes": 0},
    }

    await wait_run(api, tid, "steps", input={})
    once = await storage(api, tid)
    assert_consistent(once, tid)
    assert once["checkpoints"]["count"] == len(await history(api, tid))
    assert once["checkpoints"]["bytes"] > 0
    assert once["channel_values"]["by_channel"]["steps"]["versions"] == 3
    assert once["pending_writes"]["count"] > 0

    await wait_run(api, tid, "steps", input={})
    twice = await storage(api, tid)
    assert_consistent(twice, tid)
    assert twice["checkpoints"]["count"] > once["checkpoints"]["count"]
    assert (
        twice["channel_values"]["by_channel"]["steps"]["bytes"]
        > (once["channel_values"]["by_channel"]["steps"]["bytes"])
    )
    assert twice["total_bytes"] > once["total_bytes"]


async def test_storage_of_a_missing_thread(api: httpx.AsyncClient) -> None:
    assert (await api.get(f"/threads/{uuid.uuid4()}/storage")).status_code == 404
    assert (await api.get("/threads/nope/storage")).status_code == 422


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ({"checkpointer": {"ttl": {"strategy": "archive"}}}, "checkpointer.ttl.strategy"),
        ({"checkpointer": {"ttl": {"default_ttl": -1}}}, "checkpointer.ttl.default_ttl"),
        ({"store": {"ttl": {"sweep_interval_minutes": "often"}}}, "store.ttl.sweep_interval"),
    ],
)
def test_a_bad_ttl_section_stops_the_server_with_one_line(
    tmp_path: Path, sections: dict[str, Any], message: str
) -> None:
    config = write_config(tmp_path, **sections)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stead",
            "run",
            "--host",
            HOST,
            "--port",
            "0",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stead: error:") and message in lines[0]
