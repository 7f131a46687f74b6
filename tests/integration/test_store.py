"""Store API: items under namespaces, shared across threads.

Every test writes under its own random root label, so searches and namespace listings only see
that test's items.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

ITEM_KEYS = {"namespace", "key", "value", "created_at", "updated_at"}


@pytest.fixture
def root() -> str:
    return f"t{uuid.uuid4().hex}"


async def put(
    http: httpx.AsyncClient, namespace: list[str], key: str, value: Any
) -> httpx.Response:
    return await http.put("/store/items", json={"namespace": namespace, "key": key, "value": value})


def keys_of(items: list[dict[str, Any]]) -> set[tuple[tuple[str, ...], str]]:
    return {(tuple(item["namespace"]), item["key"]) for item in items}


# --- put / get / delete ------------------------------------------------------------------------


async def test_put_is_204_and_get_returns_the_item(
    client: LangGraphClient, http: httpx.AsyncClient, root: str
) -> None:
    response = await put(http, [root, "u1"], "prefs", {"theme": "dark", "n": [1, 2]})
    assert response.status_code == 204
    assert response.content == b""

    item = await client.store.get_item([root, "u1"], key="prefs")
    assert set(item) == ITEM_KEYS
    assert item["namespace"] == [root, "u1"]
    assert item["key"] == "prefs"
    assert item["value"] == {"theme": "dark", "n": [1, 2]}


async def test_item_timestamps_are_utc_iso8601(client: LangGraphClient, root: str) -> None:
    # Same format as every other resource: "2026-11-24T06:41:21.199147+00:00".
    await client.store.put_item([root], key="k", value={"v": 1})
    item = await client.store.get_item([root], key="k")
    searched = (await client.store.search_items([root]))["items"][0]
    for stamp in (item["created_at"], item["updated_at"], searched["updated_at"]):
        parsed = datetime.fromisoformat(stamp)
        assert parsed.utcoffset() == timedelta(0), stamp


async def test_get_takes_a_dot_joined_namespace(http: httpx.AsyncClient, root: str) -> None:
    await put(http, [root, "a", "b"], "k", {"v": 1})

    response = await http.get("/store/items", params={"namespace": f"{root}.a.b", "key": "k"})
    assert response.status_code == 200
    assert response.json()["value"] == {"v": 1}
    assert response.json()["namespace"] == [root, "a", "b"]

    # Another namespace, even a prefix of it, holds no such item.
    other = await http.get("/store/items", params={"namespace": f"{root}.a", "key": "k"})
    assert other.status_code == 200
    assert other.json() is None


async def test_put_again_replaces_the_value(client: LangGraphClient, root: str) -> None:
    await client.store.put_item([root], key="k", value={"old": 1, "shared": "x"})
    first = await client.store.get_item([root], key="k")
    await client.store.put_item([root], key="k", value={"new": 2})

    item = await client.store.get_item([root], key="k")
    assert item["value"] == {"new": 2}
    assert item["updated_at"] >= first["updated_at"]
    search = await client.store.search_items([root])
    assert len(search["items"]) == 1


async def test_get_missing_item_is_200_null(
    client: LangGraphClient, http: httpx.AsyncClient, root: str
) -> None:
    response = await http.get("/store/items", params={"namespace": root, "key": "missing"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() is None
    assert await client.store.get_item([root], key="missing") is None


async def test_delete_removes_the_item(
    client: LangGraphClient, http: httpx.AsyncClient, root: str
) -> None:
    await client.store.put_item([root, "x"], key="gone", value={"a": 1})
    await client.store.put_item([root, "x"], key="kept", value={"a": 2})

    response = await http.request(
        "DELETE", "/store/items", json={"namespace": [root, "x"], "key": "gone"}
    )
    assert response.status_code == 204
    assert response.content == b""

    assert await client.store.get_item([root, "x"], key="gone") is None
    assert (await client.store.get_item([root, "x"], key="kept"))["value"] == {"a": 2}


async def test_delete_through_sdk_and_of_missing_item(client: LangGraphClient, root: str) -> None:
    await client.store.put_item([root], key="k", value={"a": 1})
    await client.store.delete_item([root], key="k")
    assert await client.store.get_item([root], key="k") is None
    # Deleting what is not there is not an error.
    await client.store.delete_item([root], key="k")


# --- search ------------------------------------------------------------------------------------


async def _seed(client: LangGraphClient, root: str) -> None:
    await client.store.put_item([root, "u1"], key="prefs", value={"theme": "dark", "size": 1})
    await client.store.put_item([root, "u1"], key="k2", value={"a": 1})
    await client.store.put_item([root, "u2"], key="prefs", value={"theme": "light", "size": 1})


async def test_search_by_namespace_prefix(client: LangGraphClient, root: str) -> None:
    await _seed(client, root)

    everything = await client.store.search_items([root])
    assert set(everything) == {"items"}
    assert keys_of(everything["items"]) == {
        ((root, "u1"), "prefs"),
        ((root, "u1"), "k2"),
        ((root, "u2"), "prefs"),
    }
    for item in everything["items"]:
        assert set(item) == ITEM_KEYS | {"score"}
        assert item["score"] is None

    only_u1 = await client.store.search_items([root, "u1"])
    assert keys_of(only_u1["items"]) == {((root, "u1"), "prefs"), ((root, "u1"), "k2")}

    assert (await client.store.search_items([root, "nobody"]))["items"] == []


async def test_search_with_filter(client: LangGraphClient, root: str) -> None:
    await _seed(client, root)

    dark = await client.store.search_items([root], filter={"theme": "dark"})
    assert keys_of(dark["items"]) == {((root, "u1"), "prefs")}
    assert dark["items"][0]["value"] == {"theme": "dark", "size": 1}

    sized = await client.store.search_items([root], filter={"size": 1})
    assert keys_of(sized["items"]) == {((root, "u1"), "prefs"), ((root, "u2"), "prefs")}

    none = await client.store.search_items([root], filter={"theme": "purple"})
    assert none["items"] == []


async def test_search_limit_and_offset(client: LangGraphClient, root: str) -> None:
    for index in range(5):
        await client.store.put_item([root], key=f"k{index}", value={"i": index})

    first = await client.store.search_items([root], limit=2)
    second = await client.store.search_items([root], limit=2, offset=2)
    third = await client.store.search_items([root], limit=2, offset=4)
    assert len(first["items"]) == 2
    assert len(second["items"]) == 2
    assert len(third["items"]) == 1
    seen = [item["key"] for page in (first, second, third) for item in page["items"]]
    assert sorted(seen) == [f"k{index}" for index in range(5)]


async def test_search_via_http(http: httpx.AsyncClient, root: str) -> None:
    await put(http, [root, "p"], "k", {"x": "y"})
    response = await http.post(
        "/store/items/search", json={"namespace_prefix": [root], "filter": {"x": "y"}}
    )
    assert response.status_code == 200
    body = response.json()
    assert [item["key"] for item in body["items"]] == ["k"]


# --- namespaces --------------------------------------------------------------------------------


async def test_list_namespaces_with_prefix(client: LangGraphClient, root: str) -> None:
    await _seed(client, root)
    await client.store.put_item([root, "u3", "deep"], key="k", value={"a": 1})

    listed = await client.store.list_namespaces(prefix=[root])
    assert set(listed) == {"namespaces"}
    assert sorted(map(tuple, listed["namespaces"])) == [
        (root, "u1"),
        (root, "u2"),
        (root, "u3", "deep"),
    ]

    narrowed = await client.store.list_namespaces(prefix=[root, "u3"])
    assert narrowed["namespaces"] == [[root, "u3", "deep"]]
    assert (await client.store.list_namespaces(prefix=[root, "nobody"]))["namespaces"] == []


async def test_list_namespaces_max_depth(client: LangGraphClient, root: str) -> None:
    await client.store.put_item([root, "a", "b", "c"], key="k", value={"v": 1})
    await client.store.put_item([root, "a", "x"], key="k", value={"v": 2})
    await client.store.put_item([root, "z"], key="k", value={"v": 3})

    depth_one = await client.store.list_namespaces(prefix=[root], max_depth=1)
    assert depth_one["namespaces"] == [[root]]

    depth_two = await client.store.list_namespaces(prefix=[root], max_depth=2)
    assert sorted(map(tuple, depth_two["namespaces"])) == [(root, "a"), (root, "z")]

    depth_three = await client.store.list_namespaces(prefix=[root], max_depth=3)
    assert sorted(map(tuple, depth_three["namespaces"])) == [
        (root, "a", "b"),
        (root, "a", "x"),
        (root, "z"),
    ]


async def test_list_namespaces_suffix_and_limit(client: LangGraphClient, root: str) -> None:
    for user in ("u1", "u2", "u3"):
        await client.store.put_item([root, user, "memories"], key="k", value={"v": user})
    await client.store.put_item([root, "u1", "prefs"], key="k", value={"v": 0})

    memories = await client.store.list_namespaces(prefix=[root], suffix=["memories"])
    assert sorted(map(tuple, memories["namespaces"])) == [
        (root, "u1", "memories"),
        (root, "u2", "memories"),
        (root, "u3", "memories"),
    ]
    limited = await client.store.list_namespaces(prefix=[root], limit=2)
    assert len(limited["namespaces"]) == 2


async def test_deleted_item_leaves_no_namespace(client: LangGraphClient, root: str) -> None:
    await client.store.put_item([root, "temp"], key="k", value={"v": 1})
    await client.store.delete_item([root, "temp"], key="k")
    assert (await client.store.list_namespaces(prefix=[root]))["namespaces"] == []


# --- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [[1, 2], "text", 3, None, True])
async def test_value_must_be_an_object(http: httpx.AsyncClient, root: str, value: Any) -> None:
    response = await put(http, [root], "k", value)
    assert response.status_code == 422, response.text
    missing = await http.get("/store/items", params={"namespace": root, "key": "k"})
    assert missing.json() is None


@pytest.mark.parametrize("label", ["a.b", ""])
async def test_namespace_label_with_period_or_empty_is_422(
    client: LangGraphClient, http: httpx.AsyncClient, root: str, label: str
) -> None:
    response = await put(http, [root, label], "k", {"v": 1})
    assert response.status_code == 422, response.text
    if label:
        assert label in response.text
    assert (await client.store.search_items([root]))["items"] == []


async def test_namespace_label_with_nul_is_422(http: httpx.AsyncClient, root: str) -> None:
    # LangGraph's store refuses NUL in labels itself; that is the client's mistake, not a 500.
    response = await put(http, [root, "a\x00b"], "k", {"v": 1})
    assert response.status_code == 422, response.text


@pytest.mark.parametrize("ttl", [1e30, -1e30])
async def test_ttl_past_year_9999_is_422(
    client: LangGraphClient, http: httpx.AsyncClient, root: str, ttl: float
) -> None:
    response = await http.put(
        "/store/items", json={"namespace": [root], "key": "k", "value": {"v": 1}, "ttl": ttl}
    )
    assert response.status_code == 422, response.text
    assert "ttl" in response.json()["detail"]
    assert (await client.store.search_items([root]))["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"key": "k", "value": {"v": 1}},
        {"namespace": ["x"], "value": {"v": 1}},
        {"namespace": ["x"], "key": "k"},
        {"namespace": "x", "key": "k", "value": {"v": 1}},
    ],
)
async def test_put_with_missing_or_wrong_fields_is_422(
    http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await http.put("/store/items", json=body)
    assert response.status_code == 422, response.text
    assert isinstance(response.json()["detail"], str)


async def test_get_without_key_is_400(http: httpx.AsyncClient, root: str) -> None:
    response = await http.get("/store/items", params={"namespace": root})
    assert response.status_code == 400, response.text
    assert "Key is required" in response.text


async def test_delete_without_key_is_422(http: httpx.AsyncClient, root: str) -> None:
    response = await http.request("DELETE", "/store/items", json={"namespace": [root]})
    assert response.status_code == 422, response.text


async def test_store_bad_json_is_422(http: httpx.AsyncClient) -> None:
    response = await http.put(
        "/store/items", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], str)


# --- the synchronous client --------------------------------------------------------------------


def test_sync_client_store_round_trip(sync_client: SyncLangGraphClient, root: str) -> None:
    sync_client.store.put_item([root, "s"], key="k", value={"sync": True})
    assert sync_client.store.get_item([root, "s"], key="k")["value"] == {"sync": True}
    found = sync_client.store.search_items([root], filter={"sync": True})
    assert [item["key"] for item in found["items"]] == ["k"]
    assert sync_client.store.list_namespaces(prefix=[root])["namespaces"] == [[root, "s"]]
    sync_client.store.delete_item([root, "s"], key="k")
    assert sync_client.store.get_item([root, "s"], key="k") is None
