"""Runs API against a live `stead run`: background runs, wait/join, interrupts, cancel, multitask.

Contract: /work/shared/reference/agent-server-api.md (§1.4, §2, §3.4, §3.8, §10).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError

SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
TERMINAL = ("success", "error", "timeout", "interrupted")


def system_assistant_id(graph_id: str) -> str:
    return str(uuid.uuid5(SYSTEM_NAMESPACE, graph_id))


async def poll(
    fetch: Callable[[], Awaitable[Any]],
    done: Callable[[Any], bool],
    *,
    timeout: float = 10.0,
    what: str = "condition",
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


async def run_status(client: LangGraphClient, thread_id: str, run_id: str, *statuses: str) -> dict:
    return await poll(
        lambda: client.runs.get(thread_id, run_id),
        lambda run: run["status"] in statuses,
        what=f"run {run_id} to reach {statuses}",
    )


async def start_slow(
    client: LangGraphClient, thread_id: str, seconds: float = 5, **kw: Any
) -> dict:
    """A background `slow` run that is already executing."""
    run = await client.runs.create(thread_id, "slow", input={"seconds": seconds}, **kw)
    await run_status(client, thread_id, run["run_id"], "running")
    return run


async def checkpoint_lineage(client: LangGraphClient, thread_id: str) -> list[str]:
    """Checkpoint ids from the thread's current head back to its first checkpoint."""
    history = await client.threads.get_history(thread_id, limit=100)
    parents = {s["checkpoint_id"]: s["parent_checkpoint_id"] for s in history}
    lineage = []
    current = (await client.threads.get_state(thread_id))["checkpoint_id"]
    while current is not None:
        lineage.append(current)
        current = parents[current]
    return lineage


async def new_thread(client: LangGraphClient, **kw: Any) -> str:
    return (await client.threads.create(**kw))["thread_id"]


# --------------------------------------------------------------------------------------------
# Background runs: create, join, get, list, delete
# --------------------------------------------------------------------------------------------


async def test_create_returns_pending_run_with_content_location(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": "echo", "input": {"text": "hi"}}
    )
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["status"] == "pending"
    assert run["thread_id"] == thread_id
    assert run["assistant_id"] == system_assistant_id("echo")
    assert run["multitask_strategy"] == "enqueue"
    assert run["kwargs"]["input"] == {"text": "hi"}
    assert run["kwargs"]["stream_mode"] == ["values"]
    uuid.UUID(run["run_id"])
    assert response.headers["content-location"] == f"/threads/{thread_id}/runs/{run['run_id']}"
    assert await client.runs.join(thread_id, run["run_id"]) == {"text": "hi"}


async def test_join_returns_final_values_and_get_shows_success(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "steps", input={"steps": ["start"]})
    result = await client.runs.join(thread_id, run["run_id"])
    assert result == {"steps": ["start", "one", "two", "three"]}

    fetched = await client.runs.get(thread_id, run["run_id"])
    assert fetched["status"] == "success"
    assert fetched["run_id"] == run["run_id"]
    assert fetched["created_at"] == run["created_at"]
    assert fetched["updated_at"] >= run["updated_at"]

    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"] == result
    assert thread["metadata"]["graph_id"] == "steps"
    assert thread["metadata"]["assistant_id"] == system_assistant_id("steps")


async def test_join_of_finished_run_returns_values_again(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={"text": "again"})
    assert await client.runs.join(thread_id, run["run_id"]) == {"text": "again"}
    assert await client.runs.join(thread_id, run["run_id"]) == {"text": "again"}


async def test_list_runs_newest_first_with_limit_offset_and_status(
    client: LangGraphClient,
) -> None:
    thread_id = await new_thread(client)
    created = []
    for text in ("a", "b", "c"):
        run = await client.runs.create(thread_id, "echo", input={"text": text})
        await client.runs.join(thread_id, run["run_id"])
        created.append(run["run_id"])
    failed = await client.runs.create(thread_id, "failing", input={"text": "d"})
    await client.runs.join(thread_id, failed["run_id"])
    created.append(failed["run_id"])
    newest_first = list(reversed(created))

    listed = await client.runs.list(thread_id)
    assert [r["run_id"] for r in listed] == newest_first
    assert all(r["thread_id"] == thread_id for r in listed)

    assert [r["run_id"] for r in await client.runs.list(thread_id, limit=2)] == newest_first[:2]
    page = await client.runs.list(thread_id, limit=2, offset=1)
    assert [r["run_id"] for r in page] == newest_first[1:3]
    assert await client.runs.list(thread_id, offset=10) == []

    errors = await client.runs.list(thread_id, status="error")
    assert [r["run_id"] for r in errors] == [failed["run_id"]]
    successes = await client.runs.list(thread_id, status="success")
    assert [r["run_id"] for r in successes] == newest_first[1:]
    assert await client.runs.list(thread_id, status="pending") == []


async def test_list_runs_of_unknown_thread_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get(f"/threads/{uuid.uuid4()}/runs")
    assert response.status_code == 404


async def test_get_unknown_run_is_404(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    response = await http.get(f"/threads/{thread_id}/runs/{uuid.uuid4()}")
    assert response.status_code == 404
    assert "detail" in response.json()
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, str(uuid.uuid4()))


async def test_delete_run_then_it_is_gone(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={"text": "x"})
    await client.runs.join(thread_id, run["run_id"])
    path = f"/threads/{thread_id}/runs/{run['run_id']}"

    response = await http.delete(path)
    assert response.status_code == 204
    assert response.content == b""
    assert (await http.get(path)).status_code == 404
    assert (await http.delete(path)).status_code == 404
    assert await client.runs.list(thread_id) == []


async def test_delete_active_run_is_refused(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id)
    response = await http.delete(f"/threads/{thread_id}/runs/{run['run_id']}")
    assert response.status_code == 409, response.text
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "running"
    await client.runs.cancel(thread_id, run["run_id"], wait=True)


# --------------------------------------------------------------------------------------------
# /wait
# --------------------------------------------------------------------------------------------


async def test_stateful_wait_body_and_headers(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "echo", "input": {"text": "w"}}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"text": "w"}
    # Ready before the first keep-alive newline: sent whole, with its length, not in chunks.
    assert response.headers["content-length"] == str(len(response.content))
    assert "transfer-encoding" not in response.headers

    content_location = response.headers["content-location"]
    prefix = f"/threads/{thread_id}/runs/"
    assert content_location.startswith(prefix)
    run_id = content_location.removeprefix(prefix)
    assert response.headers["location"] == f"{content_location}/join"
    run = await client.runs.get(thread_id, run_id)
    assert run["status"] == "success"
    assert (await client.threads.get(thread_id))["values"] == {"text": "w"}


async def test_a_wait_longer_than_a_second_streams_keepalive_newlines_then_the_json(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    body = {"assistant_id": "slow", "input": {"seconds": 1.5}}
    async with http.stream("POST", f"/threads/{thread_id}/runs/wait", json=body) as response:
        opened_at = time.monotonic()
        raw = b"".join([chunk async for chunk in response.aiter_bytes()])
        took = time.monotonic() - opened_at
    assert response.status_code == 200
    # The headers went out before the result: a proxy sees the response start at once.
    assert took > 0.2
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert raw.startswith(b"\n") and json.loads(raw) == {"seconds": 1.5, "done": True}


async def test_stateful_wait_accumulates_state_across_runs(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    first = await client.runs.wait(thread_id, "steps", input={"steps": []})
    assert first == {"steps": ["one", "two", "three"]}
    second = await client.runs.wait(thread_id, "steps", input={"steps": ["again"]})
    assert second == {"steps": ["one", "two", "three", "again", "one", "two", "three"]}


async def test_stateless_wait_sdk(client: LangGraphClient) -> None:
    assert await client.runs.wait(None, "echo", input={"text": "stateless"}) == {
        "text": "stateless"
    }


def test_stateless_and_stateful_wait_sync_client(sync_client: SyncLangGraphClient) -> None:
    assert sync_client.runs.wait(None, "echo", input={"text": "sync"}) == {"text": "sync"}
    thread_id = sync_client.threads.create()["thread_id"]
    assert sync_client.runs.wait(thread_id, "echo", input={"text": "s2"}) == {"text": "s2"}
    runs = sync_client.runs.list(thread_id)
    assert [r["status"] for r in runs] == ["success"]


async def test_stateless_wait_headers_point_at_temporary_thread(http: httpx.AsyncClient) -> None:
    response = await http.post("/runs/wait", json={"assistant_id": "echo", "input": {"text": "t"}})
    assert response.status_code == 200
    assert response.json() == {"text": "t"}
    content_location = response.headers["content-location"]
    parts = content_location.split("/")
    assert parts[0] == "" and parts[1] == "threads" and parts[3] == "runs", content_location
    uuid.UUID(parts[2])
    uuid.UUID(parts[4])
    assert response.headers["location"] == f"{content_location}/join"


async def test_wait_on_failing_graph_returns_error_body(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs/wait", json={"assistant_id": "failing", "input": {"text": "x"}}
    )
    assert response.status_code == 200
    assert response.json() == {"__error__": {"error": "ValueError", "message": "boom: x"}}

    run_id = response.headers["content-location"].rsplit("/", 1)[1]
    assert (await client.runs.get(thread_id, run_id))["status"] == "error"
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "error"
    assert thread["error"] == {"error": "ValueError", "message": "boom: x"}


async def test_stateless_wait_on_failing_graph_returns_error_body(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/runs/wait", json={"assistant_id": "failing", "input": {"text": "s"}}
    )
    assert response.status_code == 200
    assert response.json() == {"__error__": {"error": "ValueError", "message": "boom: s"}}


async def test_sdk_wait_raises_on_error_unless_told_not_to(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    with pytest.raises(Exception, match="ValueError: boom: y"):
        await client.runs.wait(thread_id, "failing", input={"text": "y"}, raise_error=True)
    body = await client.runs.wait(thread_id, "failing", input={"text": "z"}, raise_error=False)
    assert body == {"__error__": {"error": "ValueError", "message": "boom: z"}}
    statuses = [r["status"] for r in await client.runs.list(thread_id)]
    assert statuses == ["error", "error"]


async def test_join_of_failed_run_returns_error_body(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    # Queue the failing run behind a short one, so that the join is live when it fails.
    await start_slow(client, thread_id, seconds=0.3)
    run = await client.runs.create(thread_id, "failing", input={"text": "j"})
    result = await client.runs.join(thread_id, run["run_id"])
    assert result == {"__error__": {"error": "ValueError", "message": "boom: j"}}
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "error"


# --------------------------------------------------------------------------------------------
# Interrupts, resume, forks
# --------------------------------------------------------------------------------------------


async def test_dynamic_interrupt_then_resume(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    body = await client.runs.wait(thread_id, "hitl", input={"text": "hello"})
    assert body["text"] == "hello"
    interrupts = body["__interrupt__"]
    assert len(interrupts) == 1
    assert interrupts[0]["value"] == {"question": "approve?"}
    # Every interrupt field, as the official server lists them.
    assert interrupts[0]["response_schema"] is None
    interrupt_id = interrupts[0]["id"]
    assert isinstance(interrupt_id, str) and interrupt_id

    [run] = await client.runs.list(thread_id)
    assert run["status"] == "success"
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    [(_, pending)] = thread["interrupts"].items()
    assert [(i["id"], i["value"]) for i in pending] == [(interrupt_id, {"question": "approve?"})]

    resumed = await client.runs.wait(thread_id, "hitl", command={"resume": "yes"})
    assert resumed == {"text": "hello:yes", "answer": "yes"}
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["interrupts"] == {}
    assert thread["values"] == resumed
    assert [r["status"] for r in await client.runs.list(thread_id)] == ["success", "success"]


async def test_resume_by_interrupt_id(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    body = await client.runs.wait(thread_id, "hitl", input={"text": "q"})
    interrupt_id = body["__interrupt__"][0]["id"]
    resumed = await client.runs.wait(thread_id, "hitl", command={"resume": {interrupt_id: "ok"}})
    assert resumed == {"text": "q:ok", "answer": "ok"}


async def test_interrupt_before_then_continue_with_null_input(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    body = await client.runs.wait(thread_id, "steps", input={"steps": []}, interrupt_before=["two"])
    assert body == {"steps": ["one"]}
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["two"]
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    [run] = await client.runs.list(thread_id)
    assert run["status"] == "success"

    final = await client.runs.wait(thread_id, "steps", input=None)
    assert final == {"steps": ["one", "two", "three"]}
    assert (await client.threads.get_state(thread_id))["next"] == []
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_interrupt_after(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    body = await client.runs.wait(thread_id, "steps", input={"steps": []}, interrupt_after=["two"])
    assert body == {"steps": ["one", "two"]}
    assert (await client.threads.get_state(thread_id))["next"] == ["three"]
    assert (await client.threads.get(thread_id))["status"] == "interrupted"

    final = await client.runs.wait(thread_id, "steps", input=None)
    assert final == {"steps": ["one", "two", "three"]}


async def test_interrupt_before_all_nodes(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    body = await client.runs.wait(thread_id, "steps", input={"steps": []}, interrupt_before="*")
    assert body == {"steps": []}
    assert (await client.threads.get_state(thread_id))["next"] == ["one"]


async def test_fork_from_earlier_checkpoint(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    assert await client.runs.wait(thread_id, "steps", input={"steps": []}) == {
        "steps": ["one", "two", "three"]
    }
    history = await client.threads.get_history(thread_id, limit=20)
    [before_two] = [s for s in history if s["next"] == ["two"]]
    assert before_two["values"] == {"steps": ["one"]}

    # Re-execute from the checkpoint before `two`, stopping before `three`: only a real fork
    # ends with ["one", "two"]; resuming from the latest checkpoint would not run anything.
    forked = await client.runs.wait(
        thread_id,
        "steps",
        input=None,
        checkpoint_id=before_two["checkpoint_id"],
        interrupt_before=["three"],
    )
    assert forked == {"steps": ["one", "two"]}
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"steps": ["one", "two"]}
    assert state["next"] == ["three"]
    lineage = await checkpoint_lineage(client, thread_id)
    assert before_two["checkpoint_id"] in lineage
    assert history[0]["checkpoint_id"] not in lineage, "the fork descends from the old head"


async def test_fork_with_checkpoint_object(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "steps", input={"steps": []})
    history = await client.threads.get_history(thread_id, limit=20)
    [before_three] = [s for s in history if s["next"] == ["three"]]
    forked = await client.runs.wait(
        thread_id, "steps", input=None, checkpoint=before_three["checkpoint"]
    )
    assert forked == {"steps": ["one", "two", "three"]}
    lineage = await checkpoint_lineage(client, thread_id)
    assert before_three["checkpoint_id"] in lineage
    assert history[0]["checkpoint_id"] not in lineage, "the fork descends from the old head"
    assert len(await client.threads.get_history(thread_id, limit=50)) > len(history)


# --------------------------------------------------------------------------------------------
# Stateless runs
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/runs/wait", "/runs", "/runs/stream"])
async def test_stateless_resume_requires_a_thread(http: httpx.AsyncClient, path: str) -> None:
    response = await http.post(path, json={"assistant_id": "hitl", "command": {"resume": "yes"}})
    assert response.status_code == 400, response.text
    assert "thread_id" in response.json()["detail"]


async def test_stateless_temporary_thread_is_deleted(http: httpx.AsyncClient) -> None:
    response = await http.post("/runs/wait", json={"assistant_id": "echo", "input": {"text": "t"}})
    assert response.status_code == 200
    thread_path = response.headers["content-location"].split("/runs/")[0]
    await poll(
        lambda: http.get(thread_path),
        lambda r: r.status_code == 404,
        what=f"temporary thread {thread_path} to be deleted",
    )


async def test_a_thread_made_with_a_stateless_runs_id_has_none_of_its_checkpoints(
    http: httpx.AsyncClient,
) -> None:
    """The temporary thread's checkpoints go with it (on PostgreSQL in the same call as the
    thread, migration 0012): a run on a thread created with its id starts from nothing, as on a
    thread that never existed. A checkpoint left behind would be the new run's parent."""
    response = await http.post("/runs/wait", json={"assistant_id": "echo", "input": {"text": "t"}})
    assert response.status_code == 200
    thread_id = response.headers["content-location"].split("/")[2]
    await poll(
        lambda: http.get(f"/threads/{thread_id}"),
        lambda r: r.status_code == 404,
        what=f"temporary thread {thread_id} to be deleted",
    )
    histories = []
    for reused in (thread_id, str(uuid.uuid4())):
        created = await http.post("/threads", json={"thread_id": reused})
        assert created.status_code == 200, created.text
        ran = await http.post(
            f"/threads/{reused}/runs/wait", json={"assistant_id": "echo", "input": {"text": "u"}}
        )
        assert ran.json() == {"text": "u"}
        history = await http.post(f"/threads/{reused}/history", json={"limit": 50})
        histories.append([entry["values"] for entry in history.json()])
    assert histories[0] == histories[1]


async def test_stateless_on_completion_keep_keeps_thread(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        "/runs/wait",
        json={"assistant_id": "echo", "input": {"text": "kept"}, "on_completion": "keep"},
    )
    assert response.status_code == 200
    assert response.json() == {"text": "kept"}
    _, _, thread_id, _, run_id = response.headers["content-location"].split("/")
    run = await run_status(client, thread_id, run_id, *TERMINAL)
    assert run["status"] == "success"
    assert run["kwargs"]["temporary"] is False
    # Give a (wrong) deletion the same chance it gets in test_stateless_temporary_thread_is_deleted.
    await asyncio.sleep(0.5)
    thread = await client.threads.get(thread_id)
    assert thread["values"] == {"text": "kept"}
    assert thread["status"] == "idle"


async def test_stateless_background_run_content_location(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/runs", json={"assistant_id": "echo", "input": {"text": "bg"}, "on_completion": "keep"}
    )
    assert response.status_code == 200
    run = response.json()
    assert run["status"] == "pending"
    assert response.headers["content-location"] == f"/runs/{run['run_id']}"
    joined = await http.get(f"/threads/{run['thread_id']}/runs/{run['run_id']}/join")
    assert joined.json() == {"text": "bg"}


# --------------------------------------------------------------------------------------------
# Graph kinds and assistants
# --------------------------------------------------------------------------------------------


async def test_uncompiled_graph_runs(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    assert await client.runs.wait(thread_id, "uncompiled", input={"text": "raw"}) == {"text": "raw"}
    [run] = await client.runs.list(thread_id)
    assert run["status"] == "success"


async def test_factory_graph_uses_run_config(client: LangGraphClient) -> None:
    configured = await client.runs.wait(
        None, "factory", input={"text": "hi"}, config={"configurable": {"suffix": "?"}}
    )
    assert configured == {"text": "HI?"}
    assert await client.runs.wait(None, "factory", input={"text": "hi"}) == {"text": "HI!"}
    via_context = await client.runs.wait(
        None, "factory", input={"text": "yo"}, context={"suffix": "%"}
    )
    assert via_context == {"text": "YO%"}


async def test_graph_id_and_system_assistant_uuid_are_equivalent(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    by_graph = await client.runs.create(thread_id, "echo", input={"text": "1"})
    assert by_graph["assistant_id"] == system_assistant_id("echo")
    await client.runs.join(thread_id, by_graph["run_id"])
    by_uuid = await client.runs.create(thread_id, system_assistant_id("echo"), input={"text": "2"})
    assert by_uuid["assistant_id"] == system_assistant_id("echo")
    assert await client.runs.join(thread_id, by_uuid["run_id"]) == {"text": "2"}


async def test_assistant_config_applies_to_its_runs(client: LangGraphClient) -> None:
    assistant = await client.assistants.create(
        "factory", config={"configurable": {"suffix": "#"}}, metadata={"team": "runs-test"}
    )
    assistant_id = assistant["assistant_id"]
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, assistant_id, input={"text": "abc"})
    assert run["assistant_id"] == assistant_id
    assert run["metadata"]["team"] == "runs-test"
    assert run["kwargs"]["config"]["configurable"]["suffix"] == "#"
    assert await client.runs.join(thread_id, run["run_id"]) == {"text": "ABC#"}

    # The request's config is merged over the assistant's.
    overridden = await client.runs.wait(
        thread_id, assistant_id, input={"text": "abc"}, config={"configurable": {"suffix": "~"}}
    )
    assert overridden == {"text": "ABC~"}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


async def test_missing_assistant_id_is_422(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(f"/threads/{thread_id}/runs", json={"input": {}})
    assert response.status_code == 422
    assert "assistant_id" in str(response.json()["detail"])


async def test_invalid_json_is_422(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert "detail" in response.json()


async def test_unknown_assistant(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """An unknown assistant UUID is 404; a name that is neither a UUID nor a graph is 422."""
    thread_id = await new_thread(client)
    missing = await http.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": str(uuid.uuid4())}
    )
    assert missing.status_code == 404, missing.text
    invalid = await http.post(f"/threads/{thread_id}/runs", json={"assistant_id": "nope"})
    assert invalid.status_code == 422, invalid.text
    assert "nope" in invalid.json()["detail"]
    stateless = await http.post("/runs/wait", json={"assistant_id": "nope"})
    assert stateless.status_code == 422
    assert await client.runs.list(thread_id) == []


async def test_unknown_thread_is_404_unless_if_not_exists_create(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = str(uuid.uuid4())
    response = await http.post(f"/threads/{thread_id}/runs/wait", json={"assistant_id": "echo"})
    assert response.status_code == 404
    with pytest.raises(NotFoundError):
        await client.runs.create(thread_id, "echo", input={"text": "x"})
    assert (await http.get(f"/threads/{thread_id}")).status_code == 404

    result = await client.runs.wait(
        thread_id, "echo", input={"text": "created"}, if_not_exists="create"
    )
    assert result == {"text": "created"}
    thread = await client.threads.get(thread_id)
    assert thread["thread_id"] == thread_id
    assert thread["values"] == {"text": "created"}
    assert thread["metadata"]["graph_id"] == "echo"


async def test_the_first_run_on_a_thread_has_its_graph_id_in_metadata(
    client: LangGraphClient,
) -> None:
    # As on the official server: the run inherits the thread's metadata as the run leaves it,
    # graph_id included, not as it was before its first run (found by the differential tests).
    thread = await client.threads.create(metadata={"topic": "t"})
    run = await client.runs.create(thread["thread_id"], "echo", input={"text": "x"})
    assert run["metadata"] == {
        "created_by": "system",
        "topic": "t",
        "graph_id": "echo",
        "assistant_id": system_assistant_id("echo"),
    }
    await client.runs.join(thread["thread_id"], run["run_id"])


async def test_bad_thread_id_in_path_is_422(http: httpx.AsyncClient) -> None:
    response = await http.post("/threads/not-a-uuid/runs", json={"assistant_id": "echo"})
    assert response.status_code == 422


@pytest.mark.parametrize("stream_mode", ["nope", ["values", "tools"]])
async def test_bad_stream_mode_is_422(
    client: LangGraphClient, http: httpx.AsyncClient, stream_mode: Any
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": "echo", "stream_mode": stream_mode}
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "field, value",
    [
        ("multitask_strategy", "nope"),
        ("if_not_exists", "maybe"),
        ("interrupt_before", "two"),
        ("durability", "forever"),
    ],
)
async def test_bad_enum_values_are_422(
    client: LangGraphClient, http: httpx.AsyncClient, field: str, value: str
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": "echo", field: value}
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("after_seconds", [1e30, 1e13])
async def test_a_delay_past_year_9999_is_422(
    client: LangGraphClient, http: httpx.AsyncClient, after_seconds: float
) -> None:
    thread_id = await new_thread(client)
    body = {"assistant_id": "echo", "after_seconds": after_seconds}
    response = await http.post(f"/threads/{thread_id}/runs", json=body)
    assert response.status_code == 422, response.text
    assert "after_seconds" in response.json()["detail"]
    assert await client.runs.list(thread_id) == []


async def test_configurable_and_context_together_is_400(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    body = {
        "assistant_id": "factory",
        "config": {"configurable": {"suffix": "?"}},
        "context": {"suffix": "!"},
    }
    response = await http.post(f"/threads/{thread_id}/runs", json=body)
    assert response.status_code == 400, response.text
    assert "detail" in response.json()
    with pytest.raises(BadRequestError):
        await client.runs.create(
            thread_id, "factory", config={"configurable": {"suffix": "?"}}, context={"suffix": "!"}
        )
    stateless = await http.post("/runs/wait", json={**body, "input": {"text": "x"}})
    assert stateless.status_code == 400, stateless.text
    assert await client.runs.list(thread_id) == []


# --------------------------------------------------------------------------------------------
# Cancel
# --------------------------------------------------------------------------------------------


async def test_cancel_running_run(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    started = time.monotonic()
    run = await start_slow(client, thread_id, seconds=10)
    response = await http.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel")
    assert response.status_code == 202
    assert response.content == b""

    cancelled = await run_status(client, thread_id, run["run_id"], *TERMINAL)
    assert cancelled["status"] == "interrupted"
    assert time.monotonic() - started < 8, "the cancelled run ran to completion"
    thread = await poll(
        lambda: client.threads.get(thread_id),
        lambda t: t["status"] != "busy",
        what="thread to stop being busy",
    )
    state = await client.threads.get_state(thread_id)
    assert thread["status"] == ("interrupted" if state["next"] else "idle")
    assert thread["error"]["error"] == "UserInterrupt"
    assert "done" not in (thread["values"] or {})
    # The thread takes new runs after a cancel.
    assert (await client.runs.wait(thread_id, "slow", input={"seconds": 0}))["done"] is True


async def test_cancel_with_wait_returns_json(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id, seconds=5)
    response = await http.post(
        f"/threads/{thread_id}/runs/{run['run_id']}/cancel", params={"wait": "true"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body, dict)
    assert "done" not in body
    # The run is finished by the time the waiting cancel answers.
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "interrupted"

    other = await start_slow(client, thread_id, seconds=5)
    result = await client.runs.cancel(thread_id, other["run_id"], wait=True)
    assert isinstance(result, dict)
    assert (await client.runs.get(thread_id, other["run_id"]))["status"] == "interrupted"


async def test_cancel_finished_run_is_404(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={"text": "x"})
    await client.runs.join(thread_id, run["run_id"])
    response = await http.post(f"/threads/{thread_id}/runs/{run['run_id']}/cancel")
    assert response.status_code == 404
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"
    unknown = await http.post(f"/threads/{thread_id}/runs/{uuid.uuid4()}/cancel")
    assert unknown.status_code == 404


async def test_cancel_pending_run_behind_running_one(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    first = await start_slow(client, thread_id, seconds=5)
    second = await client.runs.create(thread_id, "slow", input={"seconds": 0.1})
    assert (await client.runs.get(thread_id, second["run_id"]))["status"] == "pending"

    await client.runs.cancel(thread_id, second["run_id"])
    assert (await run_status(client, thread_id, second["run_id"], *TERMINAL))["status"] == (
        "interrupted"
    )
    assert (await client.runs.get(thread_id, first["run_id"]))["status"] == "running"
    assert (await client.threads.get(thread_id))["status"] == "busy"

    await client.runs.cancel(thread_id, first["run_id"], wait=True)
    thread = await poll(
        lambda: client.threads.get(thread_id),
        lambda t: t["status"] != "busy",
        what="thread to stop being busy",
    )
    assert thread["status"] in ("idle", "interrupted")
    # The cancelled pending run never executed.
    assert (await client.runs.get(thread_id, second["run_id"]))["status"] == "interrupted"


async def test_cancel_many_by_run_ids(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id, seconds=5)
    response = await http.post(
        "/runs/cancel", json={"thread_id": thread_id, "run_ids": [run["run_id"]]}
    )
    assert response.status_code == 204
    assert response.content == b""
    assert (await run_status(client, thread_id, run["run_id"], *TERMINAL))["status"] == (
        "interrupted"
    )


async def test_cancel_many_sdk(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id, seconds=5)
    await client.runs.cancel_many(thread_id=thread_id, run_ids=[run["run_id"]])
    assert (await run_status(client, thread_id, run["run_id"], *TERMINAL))["status"] == (
        "interrupted"
    )


async def test_cancel_many_status_all_cancels_pending_and_running(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_a = await new_thread(client)
    thread_b = await new_thread(client)
    running_a = await start_slow(client, thread_a, seconds=5)
    pending_a = await client.runs.create(thread_a, "slow", input={"seconds": 5})
    running_b = await start_slow(client, thread_b, seconds=5)
    assert (await client.runs.get(thread_a, pending_a["run_id"]))["status"] == "pending"

    response = await http.post("/runs/cancel", json={"status": "all"})
    assert response.status_code == 204

    for thread_id, run in ((thread_a, running_a), (thread_a, pending_a), (thread_b, running_b)):
        final = await run_status(client, thread_id, run["run_id"], *TERMINAL)
        assert final["status"] == "interrupted", final
    for thread_id in (thread_a, thread_b):
        await poll(
            lambda t=thread_id: client.threads.get(t),
            lambda t: t["status"] != "busy",
            what="thread to stop being busy",
        )


async def test_cancel_many_status_pending_leaves_running(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    running = await start_slow(client, thread_id, seconds=5)
    pending = await client.runs.create(thread_id, "slow", input={"seconds": 5})
    response = await http.post("/runs/cancel", json={"status": "pending"})
    assert response.status_code == 204
    assert (await run_status(client, thread_id, pending["run_id"], *TERMINAL))["status"] == (
        "interrupted"
    )
    assert (await client.runs.get(thread_id, running["run_id"]))["status"] == "running"
    await client.runs.cancel(thread_id, running["run_id"], wait=True)


async def test_cancel_many_nothing_matching_is_404(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={"text": "x"})
    await client.runs.join(thread_id, run["run_id"])
    finished = await http.post(
        "/runs/cancel", json={"thread_id": thread_id, "run_ids": [run["run_id"]]}
    )
    assert finished.status_code == 404
    unknown = await http.post(
        "/runs/cancel", json={"thread_id": thread_id, "run_ids": [str(uuid.uuid4())]}
    )
    assert unknown.status_code == 404


async def test_cancel_many_empty_run_ids_is_404(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    # Official server: a valid body that matches nothing is 404, also for an empty id list.
    thread_id = await new_thread(client)
    response = await http.post("/runs/cancel", json={"thread_id": thread_id, "run_ids": []})
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    "make_body",
    [
        lambda t, r: {"status": "all", "thread_id": t, "run_ids": [r]},
        lambda t, r: {"status": "running", "run_ids": [r]},
        lambda t, r: {"status": "nope"},
        lambda t, r: {},
    ],
    ids=["status-with-ids", "status-with-run-ids-only", "bad-status", "empty"],
)
async def test_cancel_many_invalid_bodies_are_422(
    client: LangGraphClient,
    http: httpx.AsyncClient,
    make_body: Callable[[str, str], dict],
) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id, seconds=5)
    try:
        response = await http.post("/runs/cancel", json=make_body(thread_id, run["run_id"]))
        assert response.status_code == 422, response.text
        # Nothing was cancelled.
        assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "running"
    finally:
        await client.runs.cancel(thread_id, run["run_id"], wait=True)


# --------------------------------------------------------------------------------------------
# Multitask strategies
# --------------------------------------------------------------------------------------------


async def test_enqueue_runs_one_after_the_other(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    first = await start_slow(client, thread_id, seconds=0.8)
    second = await client.runs.create(thread_id, "slow", input={"seconds": 0.05})
    assert second["multitask_strategy"] == "enqueue"

    # While the first one runs, the second one waits.
    for _ in range(5):
        first_now = await client.runs.get(thread_id, first["run_id"])
        second_now = await client.runs.get(thread_id, second["run_id"])
        if first_now["status"] != "running":
            break
        assert second_now["status"] == "pending"
        await asyncio.sleep(0.05)

    assert await client.runs.join(thread_id, second["run_id"]) == {"seconds": 0.05, "done": True}
    first_done = await client.runs.get(thread_id, first["run_id"])
    second_done = await client.runs.get(thread_id, second["run_id"])
    assert first_done["status"] == second_done["status"] == "success"
    # Run concurrently, the short second run would have finished well before the first.
    assert first_done["updated_at"] <= second_done["updated_at"]
    # The first run's end woke the queue for the second: it did not wait for the idle recheck.
    gap = datetime.fromisoformat(second_done["updated_at"]) - datetime.fromisoformat(
        first_done["updated_at"]
    )
    assert gap.total_seconds() < 2.5
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_enqueued_runs_see_previous_state(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    runs = [
        await client.runs.create(thread_id, "steps", input={"steps": [str(i)]}) for i in range(3)
    ]
    results = [await client.runs.join(thread_id, run["run_id"]) for run in runs]
    assert results[-1] == {
        "steps": [
            "0",
            "one",
            "two",
            "three",
            "1",
            "one",
            "two",
            "three",
            "2",
            "one",
            "two",
            "three",
        ]
    }
    assert [r["status"] for r in await client.runs.list(thread_id)] == ["success"] * 3


async def test_reject_while_busy_is_409(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    run = await start_slow(client, thread_id, seconds=5)
    try:
        response = await http.post(
            f"/threads/{thread_id}/runs",
            json={"assistant_id": "echo", "input": {"text": "x"}, "multitask_strategy": "reject"},
        )
        assert response.status_code == 409, response.text
        assert "detail" in response.json()
        with pytest.raises(ConflictError):
            await client.runs.create(
                thread_id, "slow", input={"seconds": 0}, multitask_strategy="reject"
            )
        with pytest.raises(httpx.HTTPStatusError) as rejected:
            await client.runs.wait(
                thread_id, "slow", input={"seconds": 0}, multitask_strategy="reject"
            )
        assert rejected.value.response.status_code == 409
        assert [r["run_id"] for r in await client.runs.list(thread_id)] == [run["run_id"]]
    finally:
        await client.runs.cancel(thread_id, run["run_id"], wait=True)

    # Once the thread is free, reject lets the run through.
    result = await client.runs.wait(
        thread_id, "slow", input={"seconds": 0}, multitask_strategy="reject"
    )
    assert result["done"] is True


# --------------------------------------------------------------------------------------------
# Batch
# --------------------------------------------------------------------------------------------


async def test_create_batch(client: LangGraphClient) -> None:
    runs = await client.runs.create_batch(
        [
            {"assistant_id": "echo", "input": {"text": "a"}, "on_completion": "keep"},
            {"assistant_id": "factory", "input": {"text": "b"}, "on_completion": "keep"},
        ]
    )
    assert len(runs) == 2
    assert len({r["thread_id"] for r in runs}) == 2
    assert [r["assistant_id"] for r in runs] == [
        system_assistant_id("echo"),
        system_assistant_id("factory"),
    ]
    results = [await client.runs.join(r["thread_id"], r["run_id"]) for r in runs]
    assert results == [{"text": "a"}, {"text": "B!"}]
    for r in runs:
        assert (await client.runs.get(r["thread_id"], r["run_id"]))["status"] == "success"


def test_create_batch_sync_client(sync_client: SyncLangGraphClient) -> None:
    runs = sync_client.runs.create_batch(
        [
            {"assistant_id": "echo", "input": {"text": str(i)}, "on_completion": "keep"}
            for i in range(3)
        ]
    )
    assert [r["status"] for r in runs] == ["pending"] * 3
    results = [sync_client.runs.join(r["thread_id"], r["run_id"]) for r in runs]
    assert results == [{"text": "0"}, {"text": "1"}, {"text": "2"}]


# --------------------------------------------------------------------------------------------
# Config and metadata the server injects
# --------------------------------------------------------------------------------------------


async def test_run_config_and_metadata_injection(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client, metadata={"owner": "me"})
    response = await http.post(
        f"/threads/{thread_id}/runs",
        json={
            "assistant_id": "echo",
            "input": {"text": "x"},
            "metadata": {"purpose": "test"},
            "config": {"configurable": {"mine": 1, "run_id": "spoofed"}, "tags": ["t1"]},
        },
        headers={"x-request-id": "req-123"},
    )
    assert response.status_code == 200, response.text
    run = response.json()

    configurable = run["kwargs"]["config"]["configurable"]
    assert configurable["run_id"] == run["run_id"]
    assert configurable["thread_id"] == thread_id
    assert configurable["graph_id"] == "echo"
    assert configurable["assistant_id"] == system_assistant_id("echo")
    assert configurable["mine"] == 1
    assert configurable["langgraph_request_id"] == "req-123"
    assert "t1" in run["kwargs"]["config"].get("tags", [])

    assert run["metadata"]["purpose"] == "test"
    assert run["metadata"]["owner"] == "me"
    assert run["metadata"]["assistant_id"] == system_assistant_id("echo")

    await client.runs.join(thread_id, run["run_id"])
    fetched = await client.runs.get(thread_id, run["run_id"])
    assert fetched["metadata"]["purpose"] == "test"
    assert fetched["kwargs"]["config"]["configurable"]["run_id"] == run["run_id"]
    assert fetched["kwargs"]["input"] == {"text": "x"}
    # The run's ids also reach the checkpoint metadata of the thread.
    state = await client.threads.get_state(thread_id)
    assert state["metadata"]["run_id"] == run["run_id"]
    assert state["metadata"]["purpose"] == "test"


async def test_context_is_recorded_on_run(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(
        thread_id, "factory", input={"text": "c"}, context={"suffix": "*"}
    )
    assert run["kwargs"]["context"] == {"suffix": "*"}
    assert await client.runs.join(thread_id, run["run_id"]) == {"text": "C*"}
