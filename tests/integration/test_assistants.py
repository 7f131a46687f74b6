"""Assistants API: system assistants, CRUD, versioning, search, graphs and schemas.

Every test creates its own assistants and tags them with a unique metadata value, so searches
see only what the test made even though the whole session shares one server.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient
from langgraph_sdk.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    UnprocessableEntityError,
)

GRAPHS = json.loads((Path(__file__).parents[1] / "graphs" / "langgraph.json").read_text())["graphs"]
SYSTEM_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
AGENT_SYSTEM_ID = "fe096781-5601-53d2-b2f6-0d3403f7e9ca"
ASSISTANT_KEYS = {
    "assistant_id",
    "graph_id",
    "config",
    "context",
    "metadata",
    "name",
    "description",
    "version",
    "created_at",
    "updated_at",
}
SCHEMA_KEYS = {"input_schema", "output_schema", "state_schema", "config_schema", "context_schema"}


def tag() -> dict[str, str]:
    """Metadata unique to one test, so searches only see that test's assistants."""
    return {"test_tag": uuid.uuid4().hex}


def system_id(graph_id: str) -> str:
    return str(uuid.uuid5(SYSTEM_NAMESPACE, graph_id))


def assert_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"detail"}
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body["detail"]


# --- system assistants -------------------------------------------------------------------------


def test_system_assistant_id_is_uuid5_of_graph_id() -> None:
    # Pins the namespace so a typo in both the server and this helper cannot cancel out.
    assert system_id("agent") == AGENT_SYSTEM_ID


@pytest.mark.parametrize("graph_id", sorted(GRAPHS))
async def test_system_assistant_exists_for_every_graph(
    client: LangGraphClient, graph_id: str
) -> None:
    assistant = await client.assistants.get(system_id(graph_id))
    assert set(assistant) >= ASSISTANT_KEYS
    assert assistant["assistant_id"] == system_id(graph_id)
    assert assistant["graph_id"] == graph_id
    assert assistant["name"] == graph_id
    assert assistant["metadata"] == {"created_by": "system"}
    assert assistant["version"] == 1
    assert assistant["config"] == {}
    assert assistant["context"] == {}
    assert assistant["description"] is None


async def test_system_assistants_are_found_by_search(client: LangGraphClient) -> None:
    found = await client.assistants.search(
        graph_id="agent", metadata={"created_by": "system"}, limit=100
    )
    assert [a["assistant_id"] for a in found] == [AGENT_SYSTEM_ID]
    every_system = await client.assistants.search(metadata={"created_by": "system"}, limit=100)
    assert {a["assistant_id"] for a in every_system} == {system_id(g) for g in GRAPHS}
    assert await client.assistants.count(metadata={"created_by": "system"}) == len(GRAPHS)


# --- create ------------------------------------------------------------------------------------


async def test_create_returns_a_new_assistant(client: LangGraphClient) -> None:
    metadata = {**tag(), "owner": "me"}
    created = await client.assistants.create(
        "agent", metadata=metadata, name="my-assistant", description="does things"
    )
    assert set(created) >= ASSISTANT_KEYS
    assert uuid.UUID(created["assistant_id"]).version == 4
    assert created["graph_id"] == "agent"
    assert created["metadata"] == metadata
    assert created["name"] == "my-assistant"
    assert created["description"] == "does things"
    assert created["version"] == 1
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None
    assert datetime.fromisoformat(created["updated_at"]).tzinfo is not None

    fetched = await client.assistants.get(created["assistant_id"])
    assert fetched == created


async def test_create_with_client_supplied_id(client: LangGraphClient) -> None:
    wanted = str(uuid.uuid4())
    created = await client.assistants.create("echo", assistant_id=wanted, metadata=tag())
    assert created["assistant_id"] == wanted
    assert (await client.assistants.get(wanted))["graph_id"] == "echo"


async def test_create_duplicate_id_raises_conflict(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    wanted = str(uuid.uuid4())
    await client.assistants.create("echo", assistant_id=wanted, name="first", metadata=tag())

    with pytest.raises(ConflictError):
        await client.assistants.create("echo", assistant_id=wanted, name="second")
    response = await http.post(
        "/assistants", json={"graph_id": "echo", "assistant_id": wanted, "if_exists": "raise"}
    )
    assert wanted in assert_error(response, 409)
    assert (await client.assistants.get(wanted))["name"] == "first"


async def test_create_if_exists_do_nothing_returns_existing(client: LangGraphClient) -> None:
    wanted = str(uuid.uuid4())
    metadata = tag()
    first = await client.assistants.create(
        "echo", assistant_id=wanted, name="first", metadata=metadata
    )
    again = await client.assistants.create(
        "agent",
        assistant_id=wanted,
        name="second",
        metadata={"other": 1},
        if_exists="do_nothing",
    )
    assert again == first
    assert again["name"] == "first"
    assert again["graph_id"] == "echo"
    assert await client.assistants.count(metadata=metadata) == 1


async def test_create_unknown_graph_is_404(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.create("no-such-graph")
    detail = assert_error(await http.post("/assistants", json={"graph_id": "no-such-graph"}), 404)
    assert "no-such-graph" in detail


async def test_create_with_configurable_and_context_is_400(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    metadata = tag()
    with pytest.raises(BadRequestError):
        await client.assistants.create(
            "agent", config={"configurable": {"a": 1}}, context={"b": 2}, metadata=metadata
        )
    response = await http.post(
        "/assistants",
        json={
            "graph_id": "agent",
            "config": {"configurable": {"a": 1}},
            "context": {"b": 2},
            "metadata": metadata,
        },
    )
    assert_error(response, 400)
    assert await client.assistants.count(metadata=metadata) == 0


async def test_context_is_mirrored_into_config_configurable(client: LangGraphClient) -> None:
    created = await client.assistants.create(
        "factory", context={"suffix": "?"}, config={"tags": ["t"]}, metadata=tag()
    )
    assert created["context"] == {"suffix": "?"}
    assert created["config"]["configurable"] == {"suffix": "?"}
    assert created["config"]["tags"] == ["t"]
    fetched = await client.assistants.get(created["assistant_id"])
    assert fetched["config"]["configurable"] == {"suffix": "?"}


async def test_configurable_is_mirrored_into_context(client: LangGraphClient) -> None:
    created = await client.assistants.create(
        "factory", config={"configurable": {"suffix": "?"}}, metadata=tag()
    )
    assert created["config"]["configurable"] == {"suffix": "?"}
    assert created["context"] == {"suffix": "?"}


async def test_create_without_graph_id_is_422(http: httpx.AsyncClient) -> None:
    assert_error(await http.post("/assistants", json={"metadata": tag()}), 422)


# --- get ---------------------------------------------------------------------------------------


async def test_get_unknown_assistant_is_404(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.assistants.get(missing)
    assert_error(await http.get(f"/assistants/{missing}"), 404)


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("GET", "/schemas"),
        ("GET", "/subgraphs"),
        ("POST", "/versions"),
    ],
)
async def test_non_uuid_assistant_id_is_422(
    http: httpx.AsyncClient, method: str, suffix: str
) -> None:
    # graph ids are not accepted here (only /graph and run bodies take them).
    body = {} if method in ("PATCH", "POST") else None
    response = await http.request(method, f"/assistants/agent{suffix}", json=body)
    detail = assert_error(response, 422)
    assert "UUID" in detail


# --- patch, versions, latest -------------------------------------------------------------------


async def test_patch_creates_a_version_and_merges_metadata(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    metadata = {**tag(), "a": 1}
    created = await client.assistants.create("agent", metadata=metadata, name="orig")
    aid = created["assistant_id"]

    second = await client.assistants.update(aid, metadata={"b": 2})
    assert second["assistant_id"] == aid
    assert second["version"] == 2
    assert second["metadata"] == {**metadata, "b": 2}
    assert second["name"] == "orig"
    assert second["graph_id"] == "agent"
    assert second["created_at"] == created["created_at"]
    assert second["updated_at"] >= created["updated_at"]

    # Even an empty patch is a new version.
    response = await http.patch(f"/assistants/{aid}", json={})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 3
    assert response.json()["metadata"] == {**metadata, "b": 2}

    renamed = await client.assistants.update(aid, name="renamed", metadata={"a": 10})
    assert renamed["version"] == 4
    assert renamed["name"] == "renamed"
    assert renamed["metadata"] == {**metadata, "a": 10, "b": 2}

    current = await client.assistants.get(aid)
    assert current["version"] == 4
    assert current["name"] == "renamed"


async def test_patch_context_is_mirrored(client: LangGraphClient) -> None:
    created = await client.assistants.create("factory", metadata=tag())
    updated = await client.assistants.update(created["assistant_id"], context={"suffix": "!!"})
    assert updated["context"] == {"suffix": "!!"}
    assert updated["config"]["configurable"] == {"suffix": "!!"}


async def test_patch_unknown_assistant_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.update(str(uuid.uuid4()), metadata={"x": 1})


async def test_patch_to_unknown_graph_is_404(client: LangGraphClient) -> None:
    created = await client.assistants.create("agent", metadata=tag())
    with pytest.raises(NotFoundError):
        await client.assistants.update(created["assistant_id"], graph_id="no-such-graph")
    assert (await client.assistants.get(created["assistant_id"]))["version"] == 1


async def test_versions_are_listed_newest_first(client: LangGraphClient) -> None:
    created = await client.assistants.create("agent", metadata={**tag(), "step": 1}, name="v1")
    aid = created["assistant_id"]
    await client.assistants.update(aid, metadata={"step": 2}, name="v2")
    await client.assistants.update(aid, metadata={"step": 3}, name="v3")

    versions = await client.assistants.get_versions(aid)
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [v["name"] for v in versions] == ["v3", "v2", "v1"]
    assert [v["metadata"]["step"] for v in versions] == [3, 2, 1]
    for version in versions:
        assert version["assistant_id"] == aid
        assert version["graph_id"] == "agent"
        assert {"config", "context", "created_at"} <= set(version)

    assert [v["version"] for v in await client.assistants.get_versions(aid, limit=1)] == [3]
    paged = await client.assistants.get_versions(aid, limit=1, offset=1)
    assert [v["version"] for v in paged] == [2]


async def test_versions_of_unknown_assistant_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(str(uuid.uuid4()))


async def test_set_latest_switches_the_current_version(client: LangGraphClient) -> None:
    metadata = {**tag(), "step": 1}
    created = await client.assistants.create("agent", metadata=metadata, name="v1")
    aid = created["assistant_id"]
    await client.assistants.update(aid, metadata={"step": 2}, name="v2")

    rolled_back = await client.assistants.set_latest(aid, 1)
    assert rolled_back["assistant_id"] == aid
    assert rolled_back["version"] == 1
    assert rolled_back["name"] == "v1"
    assert rolled_back["metadata"] == metadata

    current = await client.assistants.get(aid)
    assert current["version"] == 1
    assert current["name"] == "v1"
    # Switching does not delete history.
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [2, 1]

    forward = await client.assistants.set_latest(aid, 2)
    assert forward["version"] == 2
    assert forward["name"] == "v2"
    assert (await client.assistants.get(aid))["version"] == 2


async def test_patch_after_set_latest_gets_next_free_version(client: LangGraphClient) -> None:
    created = await client.assistants.create("agent", metadata=tag(), name="v1")
    aid = created["assistant_id"]
    await client.assistants.update(aid, name="v2")
    await client.assistants.set_latest(aid, 1)

    patched = await client.assistants.update(aid, description="from v1")
    assert patched["version"] == 3
    assert patched["name"] == "v1"
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [3, 2, 1]


async def test_set_latest_unknown_version_is_404(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    created = await client.assistants.create("agent", metadata=tag())
    aid = created["assistant_id"]
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(aid, 7)
    assert_error(await http.post(f"/assistants/{aid}/latest", json={"version": 7}), 404)
    assert (await client.assistants.get(aid))["version"] == 1
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(str(uuid.uuid4()), 1)


# --- delete ------------------------------------------------------------------------------------


async def test_delete_returns_204_then_404(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    metadata = tag()
    created = await client.assistants.create("agent", metadata=metadata)
    aid = created["assistant_id"]

    response = await http.delete(f"/assistants/{aid}")
    assert response.status_code == 204
    assert response.content == b""

    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)
    assert await client.assistants.search(metadata=metadata) == []
    assert await client.assistants.count(metadata=metadata) == 0
    assert_error(await http.delete(f"/assistants/{aid}"), 404)


async def test_delete_through_sdk(client: LangGraphClient) -> None:
    created = await client.assistants.create("echo", metadata=tag())
    await client.assistants.delete(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.get(created["assistant_id"])
    with pytest.raises(NotFoundError):
        await client.assistants.delete(created["assistant_id"])


# --- search and count --------------------------------------------------------------------------


async def _make(
    client: LangGraphClient, metadata: dict[str, Any], *specs: tuple[str, str]
) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    for graph_id, name in specs:
        made.append(await client.assistants.create(graph_id, metadata=metadata, name=name))
    return made


async def test_search_by_metadata_defaults_to_newest_first(client: LangGraphClient) -> None:
    metadata = tag()
    made = await _make(client, metadata, ("agent", "a"), ("echo", "b"), ("agent", "c"))
    await client.assistants.create("agent", metadata=tag(), name="other")

    found = await client.assistants.search(metadata=metadata)
    assert [a["assistant_id"] for a in found] == [a["assistant_id"] for a in reversed(made)]
    assert all(set(a) >= ASSISTANT_KEYS for a in found)


async def test_search_metadata_is_containment(client: LangGraphClient) -> None:
    unique = tag()
    first = await client.assistants.create("agent", metadata={**unique, "color": "red", "n": 1})
    await client.assistants.create("agent", metadata={**unique, "color": "blue", "n": 1})

    found = await client.assistants.search(metadata={**unique, "color": "red"})
    assert [a["assistant_id"] for a in found] == [first["assistant_id"]]
    assert len(await client.assistants.search(metadata={**unique, "n": 1})) == 2
    assert await client.assistants.search(metadata={**unique, "color": "green"}) == []


async def test_search_by_graph_id(client: LangGraphClient) -> None:
    metadata = tag()
    made = await _make(client, metadata, ("agent", "a"), ("echo", "b"), ("agent", "c"))

    found = await client.assistants.search(metadata=metadata, graph_id="agent")
    assert {a["assistant_id"] for a in found} == {made[0]["assistant_id"], made[2]["assistant_id"]}
    assert all(a["graph_id"] == "agent" for a in found)
    assert await client.assistants.count(metadata=metadata, graph_id="echo") == 1
    assert await client.assistants.search(metadata=metadata, graph_id="hitl") == []


async def test_search_by_name(client: LangGraphClient) -> None:
    metadata = tag()
    name = f"named-{uuid.uuid4().hex}"
    made = await _make(client, metadata, ("agent", name), ("agent", "something-else"))

    found = await client.assistants.search(name=name)
    assert [a["assistant_id"] for a in found] == [made[0]["assistant_id"]]
    assert await client.assistants.count(name=name) == 1


@pytest.mark.parametrize(
    ("sort_by", "key"),
    [("name", "name"), ("graph_id", "graph_id"), ("assistant_id", "assistant_id")],
)
async def test_search_sort_by_and_order(client: LangGraphClient, sort_by: str, key: str) -> None:
    metadata = tag()
    await _make(client, metadata, ("echo", "mike"), ("agent", "alpha"), ("steps", "zulu"))

    ascending = await client.assistants.search(metadata=metadata, sort_by=sort_by, sort_order="asc")
    descending = await client.assistants.search(
        metadata=metadata, sort_by=sort_by, sort_order="desc"
    )
    values = [a[key] for a in ascending]
    assert len(values) == 3
    assert values == sorted(values)
    assert [a[key] for a in descending] == sorted(values, reverse=True)


async def test_search_sort_by_created_at(client: LangGraphClient) -> None:
    metadata = tag()
    made = await _make(client, metadata, ("agent", "1"), ("agent", "2"), ("agent", "3"))
    ids = [a["assistant_id"] for a in made]

    ascending = await client.assistants.search(
        metadata=metadata, sort_by="created_at", sort_order="asc"
    )
    assert [a["assistant_id"] for a in ascending] == ids


async def test_search_sort_by_updated_at(client: LangGraphClient) -> None:
    metadata = tag()
    made = await _make(client, metadata, ("agent", "1"), ("agent", "2"), ("agent", "3"))
    await client.assistants.update(made[0]["assistant_id"], name="touched")

    newest_update_first = await client.assistants.search(
        metadata=metadata, sort_by="updated_at", sort_order="desc"
    )
    assert newest_update_first[0]["assistant_id"] == made[0]["assistant_id"]
    assert newest_update_first[0]["name"] == "touched"


async def test_search_limit_offset_and_pagination_headers(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    metadata = tag()
    made = await _make(client, metadata, ("agent", "1"), ("agent", "2"), ("agent", "3"))
    newest_first = [a["assistant_id"] for a in reversed(made)]

    first = await http.post("/assistants/search", json={"metadata": metadata, "limit": 2})
    assert first.status_code == 200
    assert [a["assistant_id"] for a in first.json()] == newest_first[:2]
    assert first.headers["X-Pagination-Total"] == "3"
    assert first.headers["X-Pagination-Next"] == "2"

    last = await http.post(
        "/assistants/search", json={"metadata": metadata, "limit": 2, "offset": 2}
    )
    assert last.status_code == 200
    assert [a["assistant_id"] for a in last.json()] == newest_first[2:]
    assert last.headers["X-Pagination-Total"] == "3"
    assert "X-Pagination-Next" not in last.headers

    everything = await http.post("/assistants/search", json={"metadata": metadata})
    assert len(everything.json()) == 3
    assert everything.headers["X-Pagination-Total"] == "3"
    assert "X-Pagination-Next" not in everything.headers

    beyond = await http.post("/assistants/search", json={"metadata": metadata, "offset": 5})
    assert beyond.status_code == 200
    assert beyond.json() == []
    assert "X-Pagination-Next" not in beyond.headers


async def test_search_object_format_reports_next_cursor(client: LangGraphClient) -> None:
    metadata = tag()
    await _make(client, metadata, ("agent", "1"), ("agent", "2"), ("agent", "3"))

    page = await client.assistants.search(metadata=metadata, limit=2, response_format="object")
    assert len(page["assistants"]) == 2
    assert page["next"] == "2"
    rest = await client.assistants.search(
        metadata=metadata, limit=2, offset=2, response_format="object"
    )
    assert len(rest["assistants"]) == 1
    assert rest["next"] is None


async def test_search_select_returns_only_those_fields(client: LangGraphClient) -> None:
    metadata = tag()
    made = await _make(client, metadata, ("agent", "selected"))

    found = await client.assistants.search(metadata=metadata, select=["assistant_id", "name"])
    assert found == [{"assistant_id": made[0]["assistant_id"], "name": "selected"}]


async def test_search_select_unknown_field_is_422(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/assistants/search", json={"metadata": tag(), "select": ["assistant_id", "bogus"]}
    )
    assert_error(response, 422)


@pytest.mark.parametrize(
    "body",
    [
        {"sort_by": "bogus"},
        {"sort_order": "sideways"},
        {"limit": "many"},
    ],
)
async def test_search_invalid_body_is_422(http: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_error(await http.post("/assistants/search", json=body), 422)


async def test_count_returns_a_bare_integer(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    metadata = tag()
    assert await client.assistants.count(metadata=metadata) == 0
    await _make(client, metadata, ("agent", "x"), ("echo", "y"), ("agent", "z"))

    assert await client.assistants.count(metadata=metadata) == 3
    assert await client.assistants.count(metadata=metadata, graph_id="agent") == 2
    assert await client.assistants.count(metadata=metadata, name="y") == 1

    response = await http.post("/assistants/count", json={"metadata": metadata})
    assert response.status_code == 200
    assert response.json() == 3


# --- graph, schemas, subgraphs -----------------------------------------------------------------


def _node_ids(drawing: dict[str, Any]) -> set[str]:
    return {node["id"] for node in drawing["nodes"]}


def _edges(drawing: dict[str, Any]) -> set[tuple[str, str]]:
    return {(edge["source"], edge["target"]) for edge in drawing["edges"]}


async def test_get_graph_returns_nodes_and_edges(client: LangGraphClient) -> None:
    drawing = await client.assistants.get_graph(AGENT_SYSTEM_ID)
    assert _node_ids(drawing) == {"__start__", "call_model", "__end__"}
    assert _edges(drawing) == {("__start__", "call_model"), ("call_model", "__end__")}
    start = next(node for node in drawing["nodes"] if node["id"] == "__start__")
    assert start["type"] == "runnable"
    assert start["data"]["name"] == "__start__"


async def test_get_graph_without_xray_keeps_subgraph_as_one_node(
    client: LangGraphClient,
) -> None:
    drawing = await client.assistants.get_graph(system_id("nested"))
    assert _node_ids(drawing) == {"__start__", "parent_node", "child", "__end__"}
    assert _edges(drawing) == {
        ("__start__", "parent_node"),
        ("parent_node", "child"),
        ("child", "__end__"),
    }


@pytest.mark.parametrize("xray", [True, 1])
async def test_get_graph_xray_expands_subgraphs(client: LangGraphClient, xray: bool | int) -> None:
    drawing = await client.assistants.get_graph(system_id("nested"), xray=xray)
    nodes = _node_ids(drawing)
    assert "child:child_node" in nodes
    assert "child" not in nodes
    assert {"__start__", "parent_node", "__end__"} <= nodes
    assert ("parent_node", "child:child_node") in _edges(drawing)
    assert ("child:child_node", "__end__") in _edges(drawing)


async def test_get_graph_accepts_a_graph_id(
    client: LangGraphClient, http: httpx.AsyncClient
) -> None:
    by_graph_id = await http.get("/assistants/nested/graph")
    assert by_graph_id.status_code == 200, by_graph_id.text
    assert by_graph_id.json() == await client.assistants.get_graph(system_id("nested"))
    assert _node_ids(await client.assistants.get_graph("agent")) == {
        "__start__",
        "call_model",
        "__end__",
    }


async def test_get_graph_of_created_assistant(client: LangGraphClient) -> None:
    created = await client.assistants.create("steps", metadata=tag())
    drawing = await client.assistants.get_graph(created["assistant_id"])
    assert {"one", "two", "three"} <= _node_ids(drawing)
    assert ("one", "two") in _edges(drawing)


async def test_get_graph_unknown_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get_graph(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await client.assistants.get_graph("no-such-graph")


async def test_get_graph_bad_xray_is_422(http: httpx.AsyncClient) -> None:
    assert_error(await http.get(f"/assistants/{AGENT_SYSTEM_ID}/graph?xray=maybe"), 422)


async def test_get_schemas_for_agent(client: LangGraphClient) -> None:
    schemas = await client.assistants.get_schemas(AGENT_SYSTEM_ID)
    assert set(schemas) == {"graph_id", *SCHEMA_KEYS}
    assert schemas["graph_id"] == "agent"
    assert "messages" in schemas["input_schema"]["properties"]
    assert "messages" in schemas["output_schema"]["properties"]
    assert "messages" in schemas["state_schema"]["properties"]


async def test_get_schemas_for_created_assistant(client: LangGraphClient) -> None:
    created = await client.assistants.create("agent", metadata=tag())
    schemas = await client.assistants.get_schemas(created["assistant_id"])
    assert schemas["graph_id"] == "agent"
    assert "messages" in schemas["input_schema"]["properties"]


@pytest.mark.parametrize("graph_id", ["echo", "factory", "uncompiled"])
async def test_get_schemas_state_schema_for_typed_dict_graph(
    client: LangGraphClient, graph_id: str
) -> None:
    # input/output schemas may be null for typing.TypedDict states on Python 3.11, but the
    # official server builds state_schema from the channels, so Studio can always show state.
    schemas = await client.assistants.get_schemas(system_id(graph_id))
    assert schemas["graph_id"] == graph_id
    assert set(schemas) == {"graph_id", *SCHEMA_KEYS}
    assert schemas["state_schema"] is not None
    assert "text" in schemas["state_schema"]["properties"]


async def test_get_schemas_unknown_is_404(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get_schemas(str(uuid.uuid4()))


async def test_get_subgraphs_of_nested(client: LangGraphClient) -> None:
    subgraphs = await client.assistants.get_subgraphs(system_id("nested"))
    assert set(subgraphs) == {"child"}
    assert set(subgraphs["child"]) == SCHEMA_KEYS

    in_namespace = await client.assistants.get_subgraphs(system_id("nested"), namespace="child")
    assert set(in_namespace) == {"child"}
    assert await client.assistants.get_subgraphs(system_id("nested"), recurse=True) != {}


async def test_get_subgraphs_state_schema(client: LangGraphClient) -> None:
    subgraphs = await client.assistants.get_subgraphs(system_id("nested"))
    assert subgraphs["child"]["state_schema"] is not None
    assert "text" in subgraphs["child"]["state_schema"]["properties"]


async def test_get_subgraphs_of_flat_graph_is_empty(client: LangGraphClient) -> None:
    assert await client.assistants.get_subgraphs(AGENT_SYSTEM_ID) == {}


async def test_factory_graph_schemas_and_graph(client: LangGraphClient) -> None:
    schemas = await client.assistants.get_schemas(system_id("factory"))
    assert schemas["graph_id"] == "factory"
    assert set(schemas) == {"graph_id", *SCHEMA_KEYS}

    drawing = await client.assistants.get_graph("factory")
    assert _node_ids(drawing) == {"__start__", "shout", "__end__"}

    configured = await client.assistants.create("factory", context={"suffix": "?"}, metadata=tag())
    drawing = await client.assistants.get_graph(configured["assistant_id"])
    assert "shout" in _node_ids(drawing)
    assert await client.assistants.get_subgraphs(configured["assistant_id"]) == {}


async def test_uncompiled_graph_schemas_and_graph(client: LangGraphClient) -> None:
    drawing = await client.assistants.get_graph("uncompiled")
    assert _node_ids(drawing) == {"__start__", "echo", "__end__"}
    schemas = await client.assistants.get_schemas(system_id("uncompiled"))
    assert schemas["graph_id"] == "uncompiled"


# --- the synchronous client --------------------------------------------------------------------


def test_sync_client_lifecycle(sync_client: SyncLangGraphClient) -> None:
    metadata = tag()
    created = sync_client.assistants.create("echo", metadata=metadata, name="sync")
    aid = created["assistant_id"]
    assert sync_client.assistants.get(aid)["name"] == "sync"

    updated = sync_client.assistants.update(aid, metadata={"more": True})
    assert updated["version"] == 2
    assert updated["metadata"] == {**metadata, "more": True}
    assert [v["version"] for v in sync_client.assistants.get_versions(aid)] == [2, 1]
    assert sync_client.assistants.set_latest(aid, 1)["version"] == 1

    assert [a["assistant_id"] for a in sync_client.assistants.search(metadata=metadata)] == [aid]
    assert sync_client.assistants.count(metadata=metadata) == 1

    sync_client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        sync_client.assistants.get(aid)


def test_sync_client_graph_and_schemas(sync_client: SyncLangGraphClient) -> None:
    drawing = sync_client.assistants.get_graph(system_id("nested"), xray=True)
    assert "child:child_node" in _node_ids(drawing)
    assert set(sync_client.assistants.get_subgraphs(system_id("nested"))) == {"child"}
    schemas = sync_client.assistants.get_schemas(AGENT_SYSTEM_ID)
    assert "messages" in schemas["input_schema"]["properties"]
    with pytest.raises(UnprocessableEntityError):
        sync_client.assistants.get("not-a-uuid")
