"""Crons against a live `stead run` whose scheduler looks for due crons every 0.2 s.

Contract: /work/shared/reference/agent-server-api.md (§1.5, the Cron shape in §2).
Firing tests use six-field schedules, whose sixth field is seconds (croniter, as the official
server): `* * * * * *` is due every second, so a cron fires within a second, not a minute. Each
firing test gives its crons a fresh assistant, and finds their runs through the threads that
carry that assistant's id in their metadata.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from tests.conftest import GRAPHS_CONFIG
from tests.support.metrics import scrape_url, value
from tests.support.servers import StartedServer, stead_server

SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
SCHEDULER_ENV = {"CRON_SCHEDULER_SLEEP_TIME": "0.2"}
EVERY_SECOND = "* * * * * *"
TICK = {"text": "tick"}
# Due once a year (1 January, 00:00 UTC): never fires while the tests run.
YEARLY = "0 0 1 1 *"
CRON_FIELDS = {
    "cron_id",
    "assistant_id",
    "thread_id",
    "user_id",
    "end_time",
    "schedule",
    "timezone",
    "payload",
    "next_run_date",
    "metadata",
    "on_run_completed",
    "enabled",
    "created_at",
    "updated_at",
}


def system_assistant_id(graph_id: str) -> str:
    return str(uuid.uuid5(SYSTEM_NAMESPACE, graph_id))


@pytest.fixture(scope="module")
def cron_server() -> Iterator[StartedServer]:
    with stead_server(GRAPHS_CONFIG, env=SCHEDULER_ENV) as started:
        yield started


@pytest.fixture
async def client(cron_server: StartedServer) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=cron_server.url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.http.client.aclose()


@pytest.fixture
async def http(cron_server: StartedServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=cron_server.url, timeout=30) as raw:
        yield raw


async def poll(
    fetch: Callable[[], Awaitable[Any]],
    done: Callable[[Any], bool],
    what: str,
    timeout: float = 10.0,
) -> Any:
    """Call `fetch` until `done(result)`; fail with the last result after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await fetch()
        if done(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}; last value: {result!r}")
        await asyncio.sleep(0.05)


async def new_assistant(client: LangGraphClient, graph_id: str = "echo") -> str:
    """An assistant of its own for one test's crons: their threads carry its id."""
    assistant = await client.assistants.create(graph_id, name=f"cron-{uuid.uuid4().hex[:8]}")
    return str(assistant["assistant_id"])


async def threads_of(client: LangGraphClient, assistant_id: str) -> list[dict[str, Any]]:
    found = await client.threads.search(metadata={"assistant_id": assistant_id}, limit=100)
    return list(found)


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


# --- create, read, update, delete --------------------------------------------------------------


async def test_create_returns_the_cron_and_get_reads_it(client: LangGraphClient) -> None:
    cron = await client.crons.create(
        "echo", schedule=YEARLY, input={"text": "hi"}, metadata={"team": "a"}
    )
    assert set(cron) == CRON_FIELDS
    assert cron["assistant_id"] == system_assistant_id("echo")
    assert cron["thread_id"] is None
    assert cron["user_id"] == ""
    assert cron["on_run_completed"] == "delete"
    assert cron["enabled"] is True
    assert cron["end_time"] is None
    assert cron["timezone"] is None
    assert cron["metadata"] == {"team": "a"}
    # The payload is the run body each firing uses, with the graph name resolved.
    payload = cron["payload"]
    assert payload["input"] == {"text": "hi"}
    assert payload["assistant_id"] == system_assistant_id("echo")
    assert payload["config"]["configurable"]["cron_id"] == cron["cron_id"]
    year = datetime.now(UTC).year + 1
    assert cron["next_run_date"] == f"{year}-01-01T00:00:00+00:00"
    fetched = await client.http.get(f"/runs/crons/{cron['cron_id']}")
    assert fetched == cron


async def test_webhook_policy_applies_at_cron_creation(http: httpx.AsyncClient) -> None:
    """The default policy refuses loopback webhooks: the cron is refused, not each firing."""
    body = {"assistant_id": "echo", "schedule": "0 0 1 1 *", "webhook": "http://127.0.0.1:9/hook"}
    response = await http.post("/runs/crons", json=body)
    assert response.status_code == 422, response.text
    listed = await http.post("/runs/crons/search", json={"limit": 1000})
    assert all(c["payload"].get("webhook") != body["webhook"] for c in listed.json())


async def test_info_advertises_crons(http: httpx.AsyncClient) -> None:
    assert (await http.get("/info")).json()["flags"]["crons"] is True


async def test_thread_cron_is_bound_to_its_thread(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    cron = await client.crons.create_for_thread(
        thread["thread_id"], "echo", schedule=YEARLY, multitask_strategy="reject"
    )
    assert cron["thread_id"] == thread["thread_id"]
    assert cron["on_run_completed"] is None
    assert cron["payload"]["multitask_strategy"] == "reject"
    with pytest.raises(NotFoundError):
        await client.crons.create_for_thread(str(uuid.uuid4()), "echo", schedule=YEARLY)
    bad_id = await http.post("/threads/not-a-uuid/runs/crons", json={"assistant_id": "echo"})
    assert bad_id.status_code == 422


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"schedule": "x"}, 422, "Invalid cron schedule: 'x'"),
        ({"schedule": "61 * * * *"}, 422, "Invalid cron schedule"),
        ({"schedule": "0 0 30 2 *"}, 422, "Invalid cron schedule"),
        ({"timezone": "Mars/Base"}, 422, "Invalid timezone: 'Mars/Base'"),
        ({"assistant_id": "no-such-graph"}, 404, "no-such-graph"),
        ({"on_run_completed": "sometimes"}, 422, "on_run_completed"),
        ({"config": {"configurable": {"a": 1}}, "context": {"a": 1}}, 400, "context"),
    ],
)
async def test_invalid_cron_bodies_are_refused(
    http: httpx.AsyncClient, body: dict[str, Any], status: int, detail: str
) -> None:
    response = await http.post(
        "/runs/crons", json={"assistant_id": "echo", "schedule": YEARLY, **body}
    )
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


async def test_missing_schedule_is_refused(http: httpx.AsyncClient) -> None:
    assert (await http.post("/runs/crons", json={"assistant_id": "echo"})).status_code == 422


async def test_timezone_decides_the_next_run_date(client: LangGraphClient) -> None:
    in_utc = await client.crons.create("echo", schedule="0 9 * * *")
    in_new_york = await client.crons.create(
        "echo", schedule="0 9 * * *", timezone="America/New_York"
    )
    assert in_new_york["timezone"] == "America/New_York"
    utc_next = at(in_utc["next_run_date"])
    new_york_next = at(in_new_york["next_run_date"])
    assert (utc_next.hour, utc_next.minute) == (9, 0)
    local = new_york_next.astimezone(ZoneInfo("America/New_York"))
    assert (local.hour, local.minute) == (9, 0)
    assert new_york_next != utc_next
    for next_run in (utc_next, new_york_next):
        assert timedelta(0) < next_run - datetime.now(UTC) <= timedelta(days=1)
    moved = await client.crons.update(in_new_york["cron_id"], timezone="Asia/Tokyo")
    tokyo = at(moved["next_run_date"]).astimezone(ZoneInfo("Asia/Tokyo"))
    assert (tokyo.hour, tokyo.minute) == (9, 0)
    assert moved["next_run_date"] != in_new_york["next_run_date"]


async def test_patch_changes_only_what_it_names(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    cron = await client.crons.create("echo", schedule=YEARLY, metadata={"a": 1})
    cron_id = cron["cron_id"]
    assert (await http.patch(f"/runs/crons/{cron_id}", json={})).status_code == 400

    patched = await client.crons.update(cron_id, schedule="0 0 1 7 *", metadata={"b": 2})
    assert patched["schedule"] == "0 0 1 7 *"
    assert at(patched["next_run_date"]).month == 7
    assert patched["metadata"] == {"a": 1, "b": 2}
    assert patched["updated_at"] > cron["updated_at"]
    assert patched["created_at"] == cron["created_at"]

    end = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    ending = await client.crons.update(cron_id, end_time=end)
    assert at(ending["end_time"]) == end
    cleared = await client.crons.update(cron_id, end_time=None)
    assert cleared["end_time"] is None
    assert cleared["schedule"] == "0 0 1 7 *"

    refused = await http.patch(f"/runs/crons/{cron_id}", json={"schedule": "every day"})
    assert refused.status_code == 422
    unchanged = (await http.get(f"/runs/crons/{cron_id}")).json()
    assert unchanged["schedule"] == "0 0 1 7 *"

    disabled = await client.crons.update(cron_id, enabled=False, input={"text": "new"})
    assert disabled["enabled"] is False
    assert disabled["payload"]["input"] == {"text": "new"}

    missing = await http.patch(f"/runs/crons/{uuid.uuid4()}", json={"enabled": True})
    assert missing.status_code == 404
    assert (await http.patch("/runs/crons/nope", json={"enabled": True})).status_code == 422


async def test_delete_removes_the_cron(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    cron = await client.crons.create("echo", schedule=YEARLY)
    await client.crons.delete(cron["cron_id"])
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).status_code == 404
    with pytest.raises(NotFoundError):
        await client.crons.delete(cron["cron_id"])
    assert (await http.get("/runs/crons/not-a-uuid")).status_code == 422


async def test_search_and_count_filter_crons(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    tag = uuid.uuid4().hex
    assistant_id = await new_assistant(client)
    thread = await client.threads.create()
    first = await client.crons.create(assistant_id, schedule=YEARLY, metadata={"tag": tag, "k": 1})
    second = await client.crons.create(
        assistant_id, schedule=YEARLY, metadata={"tag": tag}, enabled=False
    )
    third = await client.crons.create_for_thread(
        thread["thread_id"], "echo", schedule=YEARLY, metadata={"tag": tag}
    )

    async def search(**body: Any) -> list[str]:
        response = await http.post("/runs/crons/search", json=body)
        assert response.status_code == 200, response.text
        return [row["cron_id"] for row in response.json()]

    mine = {"metadata": {"tag": tag}}
    assert await search(**mine) == [third["cron_id"], second["cron_id"], first["cron_id"]]
    assert await search(**mine, sort_by="created_at", sort_order="asc") == [
        first["cron_id"],
        second["cron_id"],
        third["cron_id"],
    ]
    assert set(await search(assistant_id=assistant_id)) == {first["cron_id"], second["cron_id"]}
    assert await search(**mine, assistant_id="echo") == [third["cron_id"]]
    assert await search(thread_id=thread["thread_id"]) == [third["cron_id"]]
    assert await search(**mine, enabled=False) == [second["cron_id"]]
    assert await search(metadata={"tag": tag, "k": 1}) == [first["cron_id"]]

    page = await http.post("/runs/crons/search", json={**mine, "limit": 2})
    assert len(page.json()) == 2
    assert page.headers["X-Pagination-Total"] == "3"
    assert page.headers["X-Pagination-Next"] == "2"
    last = await http.post("/runs/crons/search", json={**mine, "limit": 2, "offset": 2})
    assert [row["cron_id"] for row in last.json()] == [first["cron_id"]]
    assert "X-Pagination-Next" not in last.headers

    selected = await client.crons.search(metadata={"tag": tag}, select=["cron_id", "enabled"])
    assert all(set(row) == {"cron_id", "enabled"} for row in selected)
    bad_select = await http.post("/runs/crons/search", json={"select": ["nope"]})
    assert bad_select.status_code == 422

    assert await client.crons.count(metadata={"tag": tag}) == 3
    assert await client.crons.count(assistant_id=assistant_id) == 2
    assert await client.crons.count(thread_id=thread["thread_id"]) == 1
    count = await http.post("/runs/crons/count", json={**mine, "enabled": True})
    assert count.json() == 2


async def test_deleting_a_thread_deletes_its_crons(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread = await client.threads.create()
    cron = await client.crons.create_for_thread(thread["thread_id"], "echo", schedule=YEARLY)
    await client.threads.delete(thread["thread_id"])
    assert (await http.get(f"/runs/crons/{cron['cron_id']}")).status_code == 404
    assert await client.crons.count(thread_id=thread["thread_id"]) == 0


# --- the scheduler ------------------------------------------------------------------------------


async def test_a_stateless_cron_fires_runs_that_carry_its_id(
    client: LangGraphClient, cron_server: StartedServer
) -> None:
    firings_before = value(scrape_url(cron_server.url), "stead_cron_firings_total")
    assistant_id = await new_assistant(client)
    cron = await client.crons.create(
        assistant_id,
        schedule=EVERY_SECOND,
        input={"text": "tick"},
        metadata={"source": "cron"},
        on_run_completed="keep",
    )
    try:
        threads = await poll(
            lambda: threads_of(client, assistant_id),
            lambda found: any(t["values"] == {"text": "tick"} for t in found),
            "a run of the cron to finish",
        )
    finally:
        await client.crons.delete(cron["cron_id"])
    finished = next(t for t in threads if t["values"] == {"text": "tick"})
    [run] = await client.runs.list(finished["thread_id"])
    assert run["status"] == "success"
    assert run["assistant_id"] == assistant_id
    assert run["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
    assert run["kwargs"]["input"] == {"text": "tick"}
    # Every run it started was counted (it fires every second, so maybe more than one).
    fired = len(await threads_of(client, assistant_id))
    firings = value(scrape_url(cron_server.url), "stead_cron_firings_total") - firings_before
    assert firings >= fired >= 1
    assert run["metadata"]["source"] == "cron"
    # Each firing gets a thread of its own.
    assert len({t["thread_id"] for t in threads}) == len(threads)


async def test_on_run_completed_delete_removes_each_runs_thread(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    assistant_id = await new_assistant(client, "slow")
    cron = await client.crons.create(
        assistant_id, schedule=EVERY_SECOND, input={"seconds": 0.3}, on_run_completed="delete"
    )
    try:
        threads = await poll(
            lambda: threads_of(client, assistant_id), bool, "the cron's first run to start"
        )
    finally:
        await client.crons.delete(cron["cron_id"])
    for thread in threads:
        await poll(
            lambda thread=thread: http.get(f"/threads/{thread['thread_id']}"),
            lambda response: response.status_code == 404,
            "the finished run's thread to be deleted",
        )


async def test_a_thread_cron_runs_on_its_thread(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    thread_id = thread["thread_id"]
    cron = await client.crons.create_for_thread(
        thread_id, "echo", schedule=EVERY_SECOND, input={"text": "on-thread"}
    )
    try:
        runs = await poll(
            lambda: client.runs.list(thread_id),
            lambda found: any(run["status"] == "success" for run in found),
            "the thread cron's run to finish",
        )
    finally:
        await client.crons.delete(cron["cron_id"])
    assert all(
        run["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"] for run in runs
    )
    assert all(run["thread_id"] == thread_id for run in runs)
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"text": "on-thread"}


async def test_disabled_and_ended_crons_do_not_fire(client: LangGraphClient) -> None:
    disabled_owner, ended_owner, control_owner = [await new_assistant(client) for _ in range(3)]
    past = datetime.now(UTC) - timedelta(minutes=1)
    disabled = await client.crons.create(
        disabled_owner, schedule=EVERY_SECOND, input=TICK, enabled=False, on_run_completed="keep"
    )
    ended = await client.crons.create(
        ended_owner, schedule=EVERY_SECOND, input=TICK, end_time=past, on_run_completed="keep"
    )
    control = await client.crons.create(
        control_owner, schedule=EVERY_SECOND, input=TICK, on_run_completed="keep"
    )
    try:
        # Two firings of the control cron: the other two were due at least once in between.
        await poll(
            lambda: threads_of(client, control_owner),
            lambda found: len(found) >= 2,
            "the control cron to fire twice",
        )
        assert await threads_of(client, disabled_owner) == []
        assert await threads_of(client, ended_owner) == []
        # Switched back on, the disabled cron fires: being disabled was all that held it.
        await client.crons.update(disabled["cron_id"], enabled=True)
        await poll(lambda: threads_of(client, disabled_owner), bool, "the re-enabled cron to fire")
    finally:
        for cron in (disabled, ended, control):
            await client.crons.delete(cron["cron_id"])


async def test_a_due_time_fires_once_across_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with stead_server(GRAPHS_CONFIG, data_dir, SCHEDULER_ENV) as first:
        sdk = get_client(url=first.url, api_key=None)
        assistant_id = await new_assistant(sdk)
        due = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
        # Due at one second of the year only: any second run would be a repeat of that due time.
        once = f"{due.minute} {due.hour} {due.day} {due.month} * {due.second}"
        cron = await sdk.crons.create(
            assistant_id, schedule=once, input={"text": "once"}, on_run_completed="keep"
        )
        assert at(cron["next_run_date"]) == due
        await poll(lambda: threads_of(sdk, assistant_id), bool, "the cron to fire", timeout=15)
        first.process.send_signal(signal.SIGTERM)
        assert first.process.wait(timeout=20) == 0
        await sdk.http.client.aclose()
    with stead_server(GRAPHS_CONFIG, data_dir, SCHEDULER_ENV) as second:
        sdk = get_client(url=second.url, api_key=None)
        try:
            control_owner = await new_assistant(sdk)
            control = await sdk.crons.create(
                control_owner, schedule=EVERY_SECOND, input=TICK, on_run_completed="keep"
            )
            await poll(
                lambda: threads_of(sdk, control_owner),
                lambda found: len(found) >= 2,
                "the restarted scheduler to fire the control cron twice",
            )
            await sdk.crons.delete(control["cron_id"])
            [thread] = await threads_of(sdk, assistant_id)
            # The firing survived the SIGTERM: its run ends, on the next start if need be.
            runs = await poll(
                lambda: sdk.runs.list(thread["thread_id"]),
                lambda found: [run["status"] for run in found] == ["success"],
                "the fired run to finish",
            )
            assert runs[0]["kwargs"]["config"]["configurable"]["cron_id"] == cron["cron_id"]
            after = await sdk.http.get(f"/runs/crons/{cron['cron_id']}")
            assert at(after["next_run_date"]) > due + timedelta(days=300)
        finally:
            await sdk.http.client.aclose()
