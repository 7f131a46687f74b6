"""Threads API against a live `stead run`: CRUD, search/count, copy, state, update_state, history.

Contract: /work/shared/reference/agent-server-api.md (§0, §1.3, §2, §10).
Every test tags its threads with a unique metadata value so searches never see other tests' threads.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import BadRequestError, ConflictError, NotFoundError

SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
STEPS = ["one", "two", "three"]
EMPTY_STATE = {
    "values": {},
    "next": [],
    "tasks": [],
    "metadata": None,
    "created_at": None,
    "checkpoint": None,
    "parent_checkpoint": None,
    "interrupts": [],
    "checkpoint_id": None,
    "parent_checkpoint_id": None,
}


def system_assistant_id(graph_id: str) -> str:
    return str(uuid.uuid5(SYSTEM_NAMESPACE, graph_id))


def tag() -> dict[str, str]:
    """Metadata unique to one test, so its searches only see its own threads."""
    return {"test_tag": uuid.uuid4().hex}


async def new_thread(client: LangGraphClient, **kw: Any) -> str:
    return (await client.threads.create(**kw))["thread_id"]


async def run(client: LangGraphClient, thread_id: str, graph: str, **kw: Any) -> Any:
    """Run to completion on the thread; errors come back as `{"__error__": …}`, not raised."""
    return await client.runs.wait(thread_id, graph, raise_error=False, **kw)


async def steps_thread(client: LangGraphClient, **kw: Any) -> str:
    """A thread on which the `steps` graph ran once: values.steps == one, two, three."""
    thread_id = await new_thread(client, **kw)
    assert await run(client, thread_id, "steps", input={}) == {"steps": STEPS}
    return thread_id


async def search_ids(client: LangGraphClient, **kw: Any) -> list[str]:
    return [t["thread_id"] for t in await client.threads.search(**kw)]


# --------------------------------------------------------------------------------------------
# Create / get / patch / delete
# --------------------------------------------------------------------------------------------


async def test_create_returns_idle_thread_with_null_values(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    metadata = {**tag(), "owner": "alice"}
    response = await http.post("/threads", json={"metadata": metadata})
    assert response.status_code == 200, response.text
    thread = response.json()
    assert thread["status"] == "idle"
    assert thread["values"] is None
    assert thread["metadata"] == metadata
    assert thread["config"] == {}
    assert uuid.UUID(thread["thread_id"]).version == 7
    for field in ("created_at", "updated_at", "state_updated_at"):
        assert thread[field].endswith("+00:00"), thread[field]

    fetched = await client.threads.get(thread["thread_id"])
    assert fetched["thread_id"] == thread["thread_id"]
    assert fetched["status"] == "idle"
    assert fetched["values"] is None
    assert fetched["metadata"] == metadata
    assert fetched["created_at"] == thread["created_at"]
    assert fetched["error"] is None
    assert not fetched["interrupts"]


async def test_create_with_given_id_and_if_exists(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = str(uuid.uuid4())
    first = await client.threads.create(thread_id=thread_id, metadata={"v": 1})
    assert first["thread_id"] == thread_id
    assert first["metadata"] == {"v": 1}

    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id, metadata={"v": 2})
    response = await http.post("/threads", json={"thread_id": thread_id, "if_exists": "raise"})
    assert response.status_code == 409
    assert response.json() == {"detail": f"Thread with ID {thread_id} already exists"}

    existing = await client.threads.create(
        thread_id=thread_id, metadata={"v": 3}, if_exists="do_nothing"
    )
    assert existing["thread_id"] == thread_id
    assert existing["metadata"] == {"v": 1}
    assert existing["created_at"] == first["created_at"]
    assert (await client.threads.get(thread_id))["metadata"] == {"v": 1}


async def test_non_uuid_thread_id_is_422(http: httpx.AsyncClient) -> None:
    response = await http.post("/threads", json={"thread_id": "not-a-uuid"})
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)

    response = await http.get("/threads/not-a-uuid")
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid thread ID: must be a UUID"}


async def test_get_unknown_thread_is_404(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    response = await http.get(f"/threads/{missing}")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert isinstance(response.json()["detail"], str)
    with pytest.raises(NotFoundError):
        await client.threads.get(missing)


async def test_patch_merges_metadata(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    created = await client.threads.create(metadata={"a": 1, "b": 1})
    thread_id = created["thread_id"]

    updated = await client.threads.update(thread_id, metadata={"b": 2, "c": 3})
    assert updated["metadata"] == {"a": 1, "b": 2, "c": 3}
    assert updated["updated_at"] > created["updated_at"]
    assert updated["created_at"] == created["created_at"]
    assert (await client.threads.get(thread_id))["metadata"] == {"a": 1, "b": 2, "c": 3}

    response = await http.patch(f"/threads/{uuid.uuid4()}", json={"metadata": {"x": 1}})
    assert response.status_code == 404


async def test_delete_is_204_then_404(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    response = await http.delete(f"/threads/{thread_id}")
    assert response.status_code == 204
    assert response.content == b""

    assert (await http.get(f"/threads/{thread_id}")).status_code == 404
    assert (await http.delete(f"/threads/{thread_id}")).status_code == 404
    with pytest.raises(NotFoundError):
        await client.threads.delete(thread_id)


async def test_delete_removes_runs_and_checkpoints(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = str(uuid.uuid4())
    await steps_thread(client, thread_id=thread_id)
    assert len(await client.runs.list(thread_id)) == 1
    assert len(await client.threads.get_history(thread_id)) > 1

    await client.threads.delete(thread_id)

    # Same id again, bound to the same graph so the server reads the checkpointer for it.
    recreated = await client.threads.create(thread_id=thread_id, graph_id="steps")
    assert recreated["values"] is None
    assert recreated["status"] == "idle"
    assert await client.runs.list(thread_id) == []
    state = await client.threads.get_state(thread_id)
    assert state["values"] == {}
    assert state["checkpoint"] is None
    assert state["next"] == []
    assert await client.threads.get_history(thread_id) == []
    response = await http.get(f"/threads/{thread_id}/history")
    assert response.status_code == 200
    assert response.json() == []

    # A fresh run starts from an empty state, not from the deleted checkpoints.
    assert await run(client, thread_id, "steps", input={}) == {"steps": STEPS}


# --------------------------------------------------------------------------------------------
# Search and count
# --------------------------------------------------------------------------------------------


async def test_search_by_metadata(client: LangGraphClient) -> None:
    meta = tag()
    red = await new_thread(client, metadata={**meta, "color": "red", "size": 1})
    blue = await new_thread(client, metadata={**meta, "color": "blue", "size": 1})
    await new_thread(client, metadata={"color": "red"})  # other test_tag: never matched

    assert set(await search_ids(client, metadata=meta)) == {red, blue}
    assert await search_ids(client, metadata={**meta, "color": "red"}) == [red]
    assert await search_ids(client, metadata={**meta, "color": "red", "size": 2}) == []
    assert await search_ids(client, metadata={**meta, "color": "green"}) == []


async def test_search_by_values_after_runs(client: LangGraphClient) -> None:
    meta = tag()
    word = uuid.uuid4().hex
    hit = await new_thread(client, metadata=meta)
    miss = await new_thread(client, metadata=meta)
    await new_thread(client, metadata=meta)  # never ran: values null, must not break the filter
    assert await run(client, hit, "echo", input={"text": word}) == {"text": word}
    assert await run(client, miss, "echo", input={"text": "other"}) == {"text": "other"}

    assert await search_ids(client, values={"text": word}) == [hit]
    assert await search_ids(client, metadata=meta, values={"text": "other"}) == [miss]
    assert await search_ids(client, metadata=meta, values={"text": "nope"}) == []
    assert await client.threads.count(values={"text": word}) == 1


async def test_search_and_count_by_status(client: LangGraphClient) -> None:
    meta = tag()
    idle = await new_thread(client, metadata=meta)
    failed = await new_thread(client, metadata=meta)
    interrupted = await new_thread(client, metadata=meta)
    result = await run(client, failed, "failing", input={"text": "x"})
    assert result == {"__error__": {"error": "ValueError", "message": "boom: x"}}
    result = await run(client, interrupted, "hitl", input={"text": "hello"})
    assert "__interrupt__" in result

    for status, expected in (("idle", idle), ("error", failed), ("interrupted", interrupted)):
        assert await search_ids(client, metadata=meta, status=status) == [expected], status
        assert await client.threads.count(metadata=meta, status=status) == 1, status
    assert await search_ids(client, metadata=meta, status="busy") == []
    assert await client.threads.count(metadata=meta) == 3


async def test_search_by_ids(client: LangGraphClient) -> None:
    meta = tag()
    a, b, c = [await new_thread(client, metadata=meta) for _ in range(3)]
    assert set(await search_ids(client, ids=[a, c])) == {a, c}
    assert await search_ids(client, ids=[b], metadata=meta) == [b]
    assert await search_ids(client, ids=[str(uuid.uuid4())]) == []


async def test_search_sort_by_and_order(client: LangGraphClient) -> None:
    meta = tag()
    created = [await new_thread(client, metadata=meta) for _ in range(3)]

    asc = await search_ids(client, metadata=meta, sort_by="created_at", sort_order="asc")
    assert asc == created
    desc = await search_ids(client, metadata=meta, sort_by="created_at", sort_order="desc")
    assert desc == created[::-1]
    by_id = await search_ids(client, metadata=meta, sort_by="thread_id", sort_order="asc")
    assert by_id == sorted(created)

    # Default: most recently updated first.
    await client.threads.update(created[0], metadata={"touched": True})
    assert (await search_ids(client, metadata=meta))[0] == created[0]
    by_updated = await search_ids(client, metadata=meta, sort_by="updated_at", sort_order="asc")
    assert by_updated[-1] == created[0]


async def test_search_pagination_headers(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    meta = tag()
    created = [await new_thread(client, metadata=meta) for _ in range(5)]
    body = {"metadata": meta, "sort_by": "created_at", "sort_order": "asc"}

    pages = []
    for offset, expected_next in ((0, "2"), (2, "4"), (4, None)):
        response = await http.post("/threads/search", json={**body, "limit": 2, "offset": offset})
        assert response.status_code == 200, response.text
        pages.append([t["thread_id"] for t in response.json()])
        assert response.headers.get("x-pagination-next") == expected_next, offset
        total = int(response.headers["x-pagination-total"])
        if expected_next is None:
            assert total == 5
        else:
            assert total > int(expected_next)

    assert pages == [created[0:2], created[2:4], created[4:5]]
    # The SDK's limit/offset map onto the same thing.
    assert await search_ids(client, **body, limit=3, offset=1) == created[1:4]


async def test_search_extract(client: LangGraphClient) -> None:
    meta = tag()
    thread_id = await new_thread(client, metadata=meta)
    await run(client, thread_id, "echo", input={"text": "pulled"})
    [row] = await client.threads.search(
        metadata=meta, select=["thread_id"], extract={"said": "values.text"}
    )
    assert row["thread_id"] == thread_id
    assert row["extracted"] == {"said": "pulled"}


async def test_search_select(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    meta = tag()
    thread_id = await new_thread(client, metadata=meta)
    rows = await client.threads.search(metadata=meta, select=["thread_id", "status"])
    assert rows == [{"thread_id": thread_id, "status": "idle"}]

    response = await http.post(
        "/threads/search", json={"metadata": meta, "select": ["thread_id", "bogus"]}
    )
    assert response.status_code == 422


async def test_count_uses_the_search_filters(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    meta = tag()
    word = uuid.uuid4().hex
    for _ in range(2):
        await new_thread(client, metadata={**meta, "kind": "a"})
    ran = await new_thread(client, metadata={**meta, "kind": "b"})
    await run(client, ran, "echo", input={"text": word})

    assert await client.threads.count(metadata=meta) == 3
    assert await client.threads.count(metadata={**meta, "kind": "a"}) == 2
    assert await client.threads.count(metadata=meta, values={"text": word}) == 1
    assert await client.threads.count(metadata=meta, status="idle") == 3
    assert await client.threads.count(metadata={**meta, "kind": "c"}) == 0

    response = await http.post("/threads/count", json={"metadata": {**meta, "kind": "a"}})
    assert response.status_code == 200
    assert response.json() == 2


# --------------------------------------------------------------------------------------------
# Metadata stamping and thread status after runs
# --------------------------------------------------------------------------------------------


async def test_first_run_stamps_graph_and_assistant_id(client: LangGraphClient) -> None:
    meta = tag()
    thread_id = await new_thread(client, metadata=meta)
    assert await run(client, thread_id, "echo", input={"text": "hi"}) == {"text": "hi"}

    thread = await client.threads.get(thread_id)
    assert thread["metadata"] == {
        **meta,
        "graph_id": "echo",
        "assistant_id": system_assistant_id("echo"),
    }
    # What agent-chat-ui does to list a graph's threads.
    found = await search_ids(client, metadata={**meta, "graph_id": "echo"})
    assert found == [thread_id]


async def test_run_with_custom_assistant_stamps_its_id(client: LangGraphClient) -> None:
    assistant = await client.assistants.create(graph_id="echo", name=f"a-{uuid.uuid4().hex}")
    meta = tag()
    thread_id = await new_thread(client, metadata=meta)
    await run(client, thread_id, assistant["assistant_id"], input={"text": "hi"})

    thread = await client.threads.get(thread_id)
    assert thread["metadata"]["graph_id"] == "echo"
    assert thread["metadata"]["assistant_id"] == assistant["assistant_id"]
    found = await search_ids(client, metadata={"assistant_id": assistant["assistant_id"]})
    assert found == [thread_id]


async def test_status_idle_after_success(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    before = await client.threads.get(thread_id)
    await run(client, thread_id, "echo", input={"text": "ok"})

    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["values"] == {"text": "ok"}
    assert thread["error"] is None
    assert thread["interrupts"] == {}
    assert thread["state_updated_at"] > before["state_updated_at"]


async def test_status_error_after_failing_run(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    await run(client, thread_id, "failing", input={"text": "x"})

    thread = await client.threads.get(thread_id)
    assert thread["status"] == "error"
    assert thread["error"] == {"error": "ValueError", "message": "boom: x"}
    assert thread["values"] == {"text": "x"}

    # A later successful run clears the error.
    await run(client, thread_id, "echo", input={"text": "fine"})
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert thread["error"] is None


async def test_status_interrupted_after_hitl(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    await run(client, thread_id, "hitl", input={"text": "hello"})

    thread = await client.threads.get(thread_id)
    assert thread["status"] == "interrupted"
    assert thread["values"] == {"text": "hello"}
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["ask"]
    task_id = state["tasks"][0]["id"]
    assert list(thread["interrupts"]) == [task_id]
    [interrupt] = thread["interrupts"][task_id]
    assert set(interrupt) == {"id", "value"}
    assert interrupt["value"] == {"question": "approve?"}
    assert interrupt["id"] == state["interrupts"][0]["id"]

    result = await run(client, thread_id, "hitl", command={"resume": "yes"})
    assert result == {"text": "hello:yes", "answer": "yes"}
    thread = await client.threads.get(thread_id)
    assert thread["status"] == "idle"
    assert not thread["interrupts"]


# --------------------------------------------------------------------------------------------
# Copy
# --------------------------------------------------------------------------------------------


async def test_copy_has_new_id_same_metadata_and_state(client: LangGraphClient) -> None:
    meta = tag()
    original = await steps_thread(client, metadata=meta)
    original_history = await client.threads.get_history(original)

    copy = await client.threads.copy(original)
    assert isinstance(copy, dict)
    copy_id = copy["thread_id"]
    assert copy_id != original
    uuid.UUID(copy_id)
    assert copy["metadata"] == (await client.threads.get(original))["metadata"]
    assert copy["values"] == {"steps": STEPS}
    assert (await client.threads.get(copy_id))["values"] == {"steps": STEPS}
    assert (await client.threads.get_state(copy_id))["values"] == {"steps": STEPS}
    copied_history = await client.threads.get_history(copy_id)
    assert [s["values"] for s in copied_history] == [s["values"] for s in original_history]
    assert set(await search_ids(client, metadata=meta)) == {original, copy_id}

    # The copy continues on its own: the original is untouched.
    assert await run(client, copy_id, "steps", input={}) == {"steps": STEPS * 2}
    assert (await client.threads.get_state(copy_id))["values"] == {"steps": STEPS * 2}
    assert (await client.threads.get_state(original))["values"] == {"steps": STEPS}
    assert (await client.threads.get(original))["values"] == {"steps": STEPS}
    assert len(await client.threads.get_history(original)) == len(original_history)


async def test_copy_of_interrupted_thread_resumes_independently(client: LangGraphClient) -> None:
    original = await new_thread(client)
    await run(client, original, "hitl", input={"text": "hi"})
    copy_id = (await client.threads.copy(original))["thread_id"]
    assert (await client.threads.get(copy_id))["status"] == "interrupted"

    result = await run(client, copy_id, "hitl", command={"resume": "copy"})
    assert result == {"text": "hi:copy", "answer": "copy"}
    assert (await client.threads.get(original))["status"] == "interrupted"
    assert (await client.threads.get_state(original))["next"] == ["ask"]


async def test_copy_of_thread_that_never_ran(client: LangGraphClient) -> None:
    meta = tag()
    original = await new_thread(client, metadata=meta)
    copy = await client.threads.copy(original)
    assert copy["thread_id"] != original
    assert copy["metadata"] == meta
    assert copy["status"] == "idle"
    assert copy["values"] is None
    assert set(await search_ids(client, metadata=meta)) == {original, copy["thread_id"]}


async def test_copy_unknown_thread_is_404(http: httpx.AsyncClient) -> None:
    response = await http.post(f"/threads/{uuid.uuid4()}/copy")
    assert response.status_code == 404


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


async def test_state_of_empty_thread(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    response = await http.get(f"/threads/{thread_id}/state")
    assert response.status_code == 200
    assert response.json() == EMPTY_STATE
    assert (await http.get(f"/threads/{uuid.uuid4()}/state")).status_code == 404


async def test_state_after_run(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    state = await client.threads.get_state(thread_id)

    assert state["values"] == {"steps": STEPS}
    assert state["next"] == []
    assert state["tasks"] == []
    assert state["interrupts"] == []
    assert state["checkpoint"]["thread_id"] == thread_id
    assert state["checkpoint"]["checkpoint_ns"] == ""
    assert state["checkpoint"]["checkpoint_id"] == state["checkpoint_id"]
    assert state["checkpoint_id"]
    assert state["parent_checkpoint"]["checkpoint_id"] == state["parent_checkpoint_id"]
    assert state["parent_checkpoint_id"]
    assert state["parent_checkpoint_id"] != state["checkpoint_id"]
    assert state["metadata"]["source"] == "loop"
    assert state["metadata"]["step"] == 3
    assert state["metadata"]["graph_id"] == "steps"
    assert state["created_at"]


async def test_state_at_earlier_checkpoint(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await steps_thread(client)
    history = await client.threads.get_history(thread_id)
    [after_one] = [s for s in history if s["values"] == {"steps": ["one"]}]
    checkpoint_id = after_one["checkpoint_id"]

    response = await http.get(f"/threads/{thread_id}/state/{checkpoint_id}")
    assert response.status_code == 200, response.text
    state = response.json()
    assert state["values"] == {"steps": ["one"]}
    assert state["next"] == ["two"]
    assert state["checkpoint_id"] == checkpoint_id
    assert [t["name"] for t in state["tasks"]] == ["two"]

    response = await http.post(
        f"/threads/{thread_id}/state/checkpoint",
        json={"checkpoint": {"checkpoint_id": checkpoint_id}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["values"] == {"steps": ["one"]}
    assert response.json()["checkpoint_id"] == checkpoint_id

    by_id = await client.threads.get_state(thread_id, checkpoint_id=checkpoint_id)
    assert by_id["values"] == {"steps": ["one"]}
    assert by_id["next"] == ["two"]
    by_checkpoint = await client.threads.get_state(thread_id, checkpoint=after_one["checkpoint"])
    assert by_checkpoint["checkpoint_id"] == checkpoint_id
    assert by_checkpoint["values"] == {"steps": ["one"]}

    # Reading an old checkpoint does not move the thread.
    assert (await client.threads.get_state(thread_id))["values"] == {"steps": STEPS}


async def test_state_with_subgraphs(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    assert await run(client, thread_id, "nested", input={"text": "x"}) == {"text": "x+parent+child"}
    history = await client.threads.get_history(thread_id)
    [before_child] = [s for s in history if s["next"] == ["child"]]
    checkpoint_id = before_child["checkpoint_id"]

    plain = await client.threads.get_state(thread_id, checkpoint_id=checkpoint_id)
    [task] = plain["tasks"]
    assert task["name"] == "child"
    assert not (task["state"] or {}).get("values")

    response = await http.get(f"/threads/{thread_id}/state/{checkpoint_id}?subgraphs=true")
    assert response.status_code == 200, response.text
    [task] = response.json()["tasks"]
    assert task["name"] == "child"
    child = task["state"]
    assert child["values"] == {"text": "x+parent+child"}
    assert child["checkpoint"]["checkpoint_ns"].startswith("child:")
    assert child["checkpoint_id"]

    via_sdk = await client.threads.get_state(thread_id, checkpoint_id=checkpoint_id, subgraphs=True)
    assert via_sdk["tasks"][0]["state"]["values"] == {"text": "x+parent+child"}
    via_post = await http.post(
        f"/threads/{thread_id}/state/checkpoint",
        json={"checkpoint": {"checkpoint_id": checkpoint_id}, "subgraphs": True},
    )
    assert via_post.json()["tasks"][0]["state"]["values"] == {"text": "x+parent+child"}


# --------------------------------------------------------------------------------------------
# update_state
# --------------------------------------------------------------------------------------------


async def test_update_state_as_node(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await steps_thread(client)
    before = await client.threads.get(thread_id)

    result = await client.threads.update_state(thread_id, {"steps": ["extra"]}, as_node="three")
    assert result["checkpoint"]["thread_id"] == thread_id
    assert result["checkpoint"]["checkpoint_ns"] == ""
    assert result["checkpoint"]["checkpoint_id"] == result["checkpoint_id"]
    assert result["configurable"]["checkpoint_id"] == result["checkpoint_id"]

    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"steps": [*STEPS, "extra"]}
    assert state["checkpoint_id"] == result["checkpoint_id"]
    assert state["metadata"]["source"] == "update"
    assert state["next"] == []

    thread = await client.threads.get(thread_id)
    assert thread["values"] == {"steps": [*STEPS, "extra"]}
    assert thread["status"] == "idle"
    assert thread["state_updated_at"] > before["state_updated_at"]

    # as_node decides what runs next: after "one" the graph would continue with "two".
    response = await http.post(
        f"/threads/{thread_id}/state", json={"values": {"steps": ["x"]}, "as_node": "one"}
    )
    assert response.status_code == 200, response.text
    state = await client.threads.get_state(thread_id)
    assert state["next"] == ["two"]
    assert state["values"] == {"steps": [*STEPS, "extra", "x"]}
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    # ...and a run with no input continues from there.
    assert await run(client, thread_id, "steps") == {
        "steps": [*STEPS, "extra", "x", "two", "three"]
    }


async def test_update_state_from_earlier_checkpoint_forks(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    history = await client.threads.get_history(thread_id)
    [after_one] = [s for s in history if s["values"] == {"steps": ["one"]}]

    result = await client.threads.update_state(
        thread_id, {"steps": ["fork"]}, as_node="one", checkpoint_id=after_one["checkpoint_id"]
    )
    state = await client.threads.get_state(thread_id)
    assert state["checkpoint_id"] == result["checkpoint_id"]
    assert state["parent_checkpoint_id"] == after_one["checkpoint_id"]
    assert state["values"] == {"steps": ["one", "fork"]}
    assert state["next"] == ["two"]


async def test_update_state_conflicts_with_active_run(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    meta = tag()
    thread_id = await new_thread(client, metadata=meta)
    active = await client.runs.create(thread_id, "slow", input={"seconds": 2})
    assert (await client.threads.get(thread_id))["status"] == "busy"
    assert await search_ids(client, metadata=meta, status="busy") == [thread_id]

    response = await http.post(
        f"/threads/{thread_id}/state", json={"values": {"done": False}, "as_node": "sleep"}
    )
    assert response.status_code == 409, response.text
    with pytest.raises(ConflictError):
        await client.threads.update_state(thread_id, {"done": False}, as_node="sleep")

    assert await client.runs.join(thread_id, active["run_id"]) == {"seconds": 2, "done": True}
    await client.threads.update_state(thread_id, {"done": False}, as_node="sleep")
    assert (await client.threads.get(thread_id))["values"] == {"seconds": 2, "done": False}


async def test_update_state_on_thread_that_never_ran_is_400(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await new_thread(client)
    response = await http.post(f"/threads/{thread_id}/state", json={"values": {"text": "x"}})
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["detail"], str)
    with pytest.raises(BadRequestError):
        await client.threads.update_state(thread_id, {"text": "x"})

    missing = await http.post(f"/threads/{uuid.uuid4()}/state", json={"values": {"text": "x"}})
    assert missing.status_code == 404


# --------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------


async def test_history_newest_first_limit_and_before(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    history = await client.threads.get_history(thread_id, limit=10)

    assert [s["metadata"]["step"] for s in history] == [3, 2, 1, 0, -1]
    assert [s["values"].get("steps", []) for s in history] == [
        STEPS,
        STEPS[:2],
        STEPS[:1],
        [],
        [],
    ]
    assert (
        history[0]["checkpoint_id"] == (await client.threads.get_state(thread_id))["checkpoint_id"]
    )
    assert history[-1]["metadata"]["source"] == "input"
    assert history[-1]["parent_checkpoint"] is None
    for newer, older in itertools.pairwise(history):
        assert newer["parent_checkpoint_id"] == older["checkpoint_id"]

    ids = [s["checkpoint_id"] for s in history]
    assert [
        s["checkpoint_id"] for s in await client.threads.get_history(thread_id, limit=2)
    ] == ids[:2]
    older = await client.threads.get_history(thread_id, limit=10, before=ids[1])
    assert [s["checkpoint_id"] for s in older] == ids[2:]
    older = await client.threads.get_history(thread_id, limit=1, before=history[2]["checkpoint"])
    assert [s["checkpoint_id"] for s in older] == ids[3:4]


async def test_history_get_and_post_variants(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    thread_id = await steps_thread(client)
    full = (await http.post(f"/threads/{thread_id}/history", json={"limit": 10})).json()
    ids = [s["checkpoint_id"] for s in full]
    assert len(ids) == 5

    response = await http.get(f"/threads/{thread_id}/history", params={"limit": 10})
    assert response.status_code == 200
    assert [s["checkpoint_id"] for s in response.json()] == ids
    response = await http.get(f"/threads/{thread_id}/history", params={"limit": 2})
    assert [s["checkpoint_id"] for s in response.json()] == ids[:2]
    response = await http.get(
        f"/threads/{thread_id}/history", params={"limit": 10, "before": ids[2]}
    )
    assert [s["checkpoint_id"] for s in response.json()] == ids[3:]

    response = await http.post(
        f"/threads/{thread_id}/history",
        json={"limit": 2, "before": {"checkpoint_id": ids[0]}},
    )
    assert response.status_code == 200
    assert [s["checkpoint_id"] for s in response.json()] == ids[1:3]


async def test_history_before_as_a_config(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    """`before` as a RunnableConfig, the form the JS SDK and Studio send."""
    thread_id = await steps_thread(client)
    ids = [s["checkpoint_id"] for s in await client.threads.get_history(thread_id, limit=10)]

    config = {"configurable": {"checkpoint_id": ids[1], "thread_id": thread_id}}
    older = await client.threads.get_history(thread_id, limit=10, before=config)  # type: ignore[arg-type]
    assert [s["checkpoint_id"] for s in older] == ids[2:]
    response = await http.post(
        f"/threads/{thread_id}/history",
        json={"limit": 1, "before": {"configurable": {"checkpoint_id": ids[2]}}},
    )
    assert [s["checkpoint_id"] for s in response.json()] == ids[3:4]
    # A config naming no checkpoint limits nothing, as on the official server.
    response = await http.post(
        f"/threads/{thread_id}/history", json={"limit": 10, "before": {"configurable": {}}}
    )
    assert [s["checkpoint_id"] for s in response.json()] == ids


async def test_history_metadata_filter(client: LangGraphClient) -> None:
    thread_id = await steps_thread(client)
    update = await client.threads.update_state(thread_id, {"steps": ["edit"]}, as_node="three")

    updates = await client.threads.get_history(thread_id, metadata={"source": "update"})
    assert [s["checkpoint_id"] for s in updates] == [update["checkpoint_id"]]
    assert updates[0]["values"] == {"steps": [*STEPS, "edit"]}

    loops = await client.threads.get_history(thread_id, metadata={"source": "loop"})
    assert [s["metadata"]["step"] for s in loops] == [3, 2, 1, 0]
    assert await client.threads.get_history(thread_id, metadata={"source": "fork"}) == []


async def test_history_of_unknown_thread_is_404(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    missing = str(uuid.uuid4())
    assert (await http.get(f"/threads/{missing}/history")).status_code == 404
    assert (await http.post(f"/threads/{missing}/history", json={})).status_code == 404
    with pytest.raises(NotFoundError):
        await client.threads.get_history(missing)

    never_ran = await new_thread(client)
    assert await client.threads.get_history(never_ran) == []


# --------------------------------------------------------------------------------------------
# Supersteps on create
# --------------------------------------------------------------------------------------------


async def test_create_with_supersteps(client: LangGraphClient, http: httpx.AsyncClient) -> None:
    meta = tag()
    thread = await client.threads.create(
        metadata=meta,
        graph_id="steps",
        supersteps=[
            {"updates": [{"values": {"steps": ["a"]}, "as_node": "one"}]},
            {"updates": [{"values": {"steps": ["b"]}, "as_node": "two"}]},
        ],
    )
    thread_id = thread["thread_id"]
    assert thread["metadata"] == {**meta, "graph_id": "steps"}

    state = await client.threads.get_state(thread_id)
    assert state["values"] == {"steps": ["a", "b"]}
    assert state["next"] == ["three"]
    fetched = await client.threads.get(thread_id)
    assert fetched["values"] == {"steps": ["a", "b"]}
    history = await client.threads.get_history(thread_id)
    assert {s["metadata"]["source"] for s in history} >= {"update"}

    # The seeded thread runs on from where the supersteps left it.
    assert await run(client, thread_id, "steps") == {"steps": ["a", "b", "three"]}

    response = await http.post(
        "/threads",
        json={"supersteps": [{"updates": [{"values": {"steps": ["a"]}, "as_node": "one"}]}]},
    )
    assert response.status_code == 400, response.text


# --------------------------------------------------------------------------------------------
# Sync client
# --------------------------------------------------------------------------------------------


def test_sync_client_thread_lifecycle(sync_client: SyncLangGraphClient) -> None:
    meta = tag()
    thread = sync_client.threads.create(metadata=meta)
    thread_id = thread["thread_id"]
    assert thread["status"] == "idle"

    updated = sync_client.threads.update(thread_id, metadata={"extra": 1})
    assert updated["metadata"] == {**meta, "extra": 1}
    assert [t["thread_id"] for t in sync_client.threads.search(metadata=meta)] == [thread_id]
    assert sync_client.threads.count(metadata=meta) == 1

    sync_client.threads.delete(thread_id)
    with pytest.raises(NotFoundError):
        sync_client.threads.get(thread_id)
    assert sync_client.threads.count(metadata=meta) == 0


def test_sync_client_state_history_and_copy(sync_client: SyncLangGraphClient) -> None:
    thread_id = sync_client.threads.create()["thread_id"]
    result = sync_client.runs.wait(thread_id, "steps", input={})
    assert result == {"steps": STEPS}

    state = sync_client.threads.get_state(thread_id)
    assert state["values"] == {"steps": STEPS}
    history = sync_client.threads.get_history(thread_id, limit=2)
    assert history[0]["checkpoint_id"] == state["checkpoint_id"]
    assert len(history) == 2

    update = sync_client.threads.update_state(thread_id, {"steps": ["s"]}, as_node="three")
    assert sync_client.threads.get_state(thread_id)["checkpoint_id"] == update["checkpoint_id"]

    copy = sync_client.threads.copy(thread_id)
    assert copy["thread_id"] != thread_id
    assert sync_client.threads.get_state(copy["thread_id"])["values"] == {"steps": [*STEPS, "s"]}
