"""Differential tests of custom auth: Stead and the official server with the same langgraph.json
``auth.path`` (tests/graphs/auth.py, written as the LangGraph docs show) and the same graphs.

Alice creates a thread, a run, an assistant, a cron and a store item; then bob, the admin, an
anonymous client and a client with a wrong token try to reach them. Status codes, body key sets and
owner metadata must agree, as in ``test_against_official.py``. Where the servers differ by design
(README, "Authentication") the difference is asserted explicitly, one test each.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GRAPHS_DIR
from tests.differential.conftest import Clients, Urls, both_servers
from tests.differential.test_against_official import (
    Recorder,
    compare,
    field,
    items,
    run_both,
)

TOKENS = {"alice": "alice-token", "bob": "bob-token", "admin": "admin-token"}
AS = {user: {"Authorization": f"Bearer {token}"} for user, token in TOKENS.items()}
ALICE, BOB, ADMIN = AS["alice"], AS["bob"], AS["admin"]
NEVER = "0 0 1 1 *"
# Official quirk (see test_thread_lifecycle): a thread that never ran has no "error"/"interrupts".
NEVER_RAN = ("error", "interrupts")
MISSING = "00000000-0000-4000-8000-000000000000"  # the same id on both servers: it names a label


def write_graphs_dir(tmp: Path, auth_module: str) -> Path:
    """A graphs directory whose langgraph.json points (absolute paths) at the test graphs and at
    ``auth_module``; both servers read the same file."""
    agent = GRAPHS_DIR / "agent.py"
    config = {
        "graphs": {"echo": f"{agent}:echo", "slow": f"{agent}:slow"},
        "auth": {"path": f"{GRAPHS_DIR / auth_module}:auth"},
    }
    (tmp / "langgraph.json").write_text(json.dumps(config))
    return tmp


@asynccontextmanager
async def _clients(urls: Urls) -> AsyncIterator[Clients]:
    async with (
        httpx.AsyncClient(base_url=urls.stead, timeout=30) as stead,
        httpx.AsyncClient(base_url=urls.official, timeout=30) as official,
    ):
        yield Clients(stead=stead, official=official)


@pytest.fixture(scope="module")
def auth_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Urls]:
    with both_servers(write_graphs_dir(tmp_path_factory.mktemp("auth"), "auth.py")) as urls:
        yield urls


@pytest.fixture
async def clients(auth_urls: Urls) -> AsyncIterator[Clients]:
    """Clients without credentials: every request names its user with ``headers=``."""
    async with _clients(auth_urls) as pair:
        yield pair


async def alice_world(rec: Recorder) -> dict[str, str]:
    """Alice's thread (with a finished run), assistant, cron and store item; their ids."""
    thread = await rec.request(
        "alice create thread",
        "POST",
        "/threads",
        json={"metadata": {"topic": "isolation", "owner": "bob"}},
        headers=ALICE,
        ignore=NEVER_RAN,
    )
    # The handler stamps the owner over the one the client sent.
    rec.check("alice thread metadata", field(thread, "metadata"))
    thread_id = str(field(thread, "thread_id"))
    run = await rec.request(
        "alice create run",
        "POST",
        f"/threads/{thread_id}/runs",
        json={"assistant_id": "echo", "input": {"text": "hi"}},
        headers=ALICE,
    )
    run_id = str(field(run, "run_id"))
    rec.check("alice run metadata", field(run, "metadata"))
    await rec.request(
        "alice join run",
        "GET",
        f"/threads/{thread_id}/runs/{run_id}/join",
        headers=ALICE,
        body=True,
    )
    assistant = await rec.request(
        "alice create assistant",
        "POST",
        "/assistants",
        json={"graph_id": "echo", "name": "alice's"},
        headers=ALICE,
    )
    rec.check("alice assistant metadata", field(assistant, "metadata"))
    cron = await rec.request(
        "alice create cron",
        "POST",
        f"/threads/{thread_id}/runs/crons",
        json={"assistant_id": "echo", "schedule": NEVER, "enabled": False},
        headers=ALICE,
    )
    rec.check("alice cron metadata", field(cron, "metadata"))
    await rec.request(
        "alice put store item",
        "PUT",
        "/store/items",
        json={"namespace": ["prefs"], "key": "theme", "value": {"color": "dark"}},
        headers=ALICE,
    )
    return {
        "thread": thread_id,
        "run": run_id,
        "assistant": str(field(assistant, "assistant_id")),
        "cron": str(field(cron, "cron_id")),
    }


# (label, method, path, body): requests on alice's resources, sent as every user in turn.
# Read-only or refused for bob; alice's and the admin's writes are harmless (metadata, a run).
REQUESTS: list[tuple[str, str, str, Any]] = [
    ("get thread", "GET", "/threads/{thread}", None),
    ("patch thread", "PATCH", "/threads/{thread}", {"metadata": {"x": 1}}),
    ("state", "GET", "/threads/{thread}/state", None),
    ("history", "POST", "/threads/{thread}/history", {"limit": 10}),
    ("runs list", "GET", "/threads/{thread}/runs", None),
    ("run get", "GET", "/threads/{thread}/runs/{run}", None),
    ("run join", "GET", "/threads/{thread}/runs/{run}/join", None),
    ("run wait", "POST", "/threads/{thread}/runs/wait", {"assistant_id": "echo", "input": {}}),
    ("assistant get", "GET", "/assistants/{assistant}", None),
    ("assistant patch", "PATCH", "/assistants/{assistant}", {"metadata": {"y": 1}}),
    ("cron get", "GET", "/runs/crons/{cron}", None),
    ("cron patch", "PATCH", "/runs/crons/{cron}", {"schedule": NEVER}),
]


def _fill(template: Any, ids: dict[str, str]) -> Any:
    text = json.dumps(template)
    for name, value in ids.items():
        text = text.replace("{" + name + "}", value)
    return json.loads(text)


async def test_isolation(clients: Clients) -> None:
    async def scenario(rec: Recorder) -> None:
        ids = await alice_world(rec)
        for user in ("bob", "alice", "admin"):
            for label, method, path, body in REQUESTS:
                response = await rec.request(
                    f"{user} {label}",
                    method,
                    _fill(path, ids),
                    json=_fill(body, ids) if body is not None else None,
                    headers=AS[user],
                )
                rec.check(f"{user} {label} mentions alice", "alice" in response.text)
        # Bob's refused writes changed nothing, and he cannot delete what he cannot see.
        await rec.request("bob delete thread", "DELETE", f"/threads/{ids['thread']}", headers=BOB)
        await rec.request(
            "bob delete run", "DELETE", f"/threads/{ids['thread']}/runs/{ids['run']}", headers=BOB
        )
        thread = await rec.request(
            "thread after bob", "GET", f"/threads/{ids['thread']}", headers=ALICE
        )
        rec.check("thread metadata after bob", field(thread, "metadata"))
        # Deleting assistants and crons is for admins only: the handlers refuse (False, or their
        # own HTTPException) before any lookup, so bob and alice get the same 403.
        for user in ("bob", "alice"):
            await rec.request(
                f"{user} delete assistant",
                "DELETE",
                f"/assistants/{ids['assistant']}",
                headers=AS[user],
                body=True,
            )
            await rec.request(
                f"{user} delete cron",
                "DELETE",
                f"/runs/crons/{ids['cron']}",
                headers=AS[user],
                body=True,
            )
        await rec.request(
            "admin delete cron", "DELETE", f"/runs/crons/{ids['cron']}", headers=ADMIN
        )
        await rec.request("cron after delete", "GET", f"/runs/crons/{ids['cron']}", headers=ALICE)
        await rec.request(
            "admin delete assistant", "DELETE", f"/assistants/{ids['assistant']}", headers=ADMIN
        )
        await rec.request(
            "alice delete thread", "DELETE", f"/threads/{ids['thread']}", headers=ALICE
        )
        await rec.request("thread after delete", "GET", f"/threads/{ids['thread']}", headers=ALICE)

    await compare(clients, scenario)


async def test_runs_across_owners(clients: Clients) -> None:
    async def scenario(rec: Recorder) -> None:
        ids = await alice_world(rec)
        bob_thread = await rec.request(
            "bob create thread", "POST", "/threads", json={}, headers=BOB, ignore=NEVER_RAN
        )
        bob_thread_id = field(bob_thread, "thread_id")
        # Bob's own thread, alice's assistant: refused as if the assistant did not exist.
        await rec.request(
            "bob runs alice's assistant",
            "POST",
            f"/threads/{bob_thread_id}/runs/wait",
            json={"assistant_id": ids["assistant"], "input": {}},
            headers=BOB,
        )
        await rec.request(
            "bob creates a run on alice's thread",
            "POST",
            f"/threads/{ids['thread']}/runs",
            json={"assistant_id": "echo", "input": {}},
            headers=BOB,
        )
        await rec.request(
            "bob cron on alice's thread",
            "POST",
            f"/threads/{ids['thread']}/runs/crons",
            json={"assistant_id": "echo", "schedule": NEVER, "enabled": False},
            headers=BOB,
        )
        # A run that creates its thread gives it to its creator.
        new_id = str(uuid.uuid4())
        body = {"assistant_id": "echo", "input": {"text": "x"}, "if_not_exists": "create"}
        await rec.request(
            "alice run creates thread",
            "POST",
            f"/threads/{new_id}/runs/wait",
            json=body,
            headers=ALICE,
            body=True,
        )
        created = await rec.request("created thread", "GET", f"/threads/{new_id}", headers=ALICE)
        rec.check("created thread owner", field(created, "metadata", "owner"))
        await rec.request(
            "bob run on it", "POST", f"/threads/{new_id}/runs/wait", json=body, headers=BOB
        )
        # An id taken by another user's thread: a conflict, without its content.
        await rec.request(
            "bob takes alice's id", "POST", "/threads", json={"thread_id": new_id}, headers=BOB
        )

    await compare(clients, scenario)


async def test_searches_and_counts(clients: Clients) -> None:
    async def scenario(rec: Recorder) -> None:
        ids = await alice_world(rec)
        await rec.request(
            "bob create thread", "POST", "/threads", json={}, headers=BOB, ignore=NEVER_RAN
        )
        for user in ("alice", "bob", "admin"):
            headers = AS[user]
            threads = await rec.request(
                f"{user} threads search",
                "POST",
                "/threads/search",
                json={"limit": 1000},
                headers=headers,
                ignore=NEVER_RAN,
            )
            owners = {field(t, "metadata", "owner") for t in items(threads)}
            # The admin sees every owner's; the others only their own.
            rec.check(
                f"{user} thread owners",
                sorted(owners - {None}) if user == "admin" else sorted(owners),
            )
            count = await rec.request(
                f"{user} threads count", "POST", "/threads/count", json={}, headers=headers
            )
            rec.check(f"{user} threads count agrees", count.json() == len(items(threads)))
            named = await rec.request(
                f"{user} search alice's id",
                "POST",
                "/threads/search",
                json={"ids": [ids["thread"]]},
                headers=headers,
                ignore=NEVER_RAN,
            )
            rec.check(f"{user} finds alice's id", len(items(named)))
            forged = await rec.request(
                f"{user} search forged owner",
                "POST",
                "/threads/search",
                json={"metadata": {"owner": "alice"}, "limit": 1000},
                headers=headers,
                ignore=NEVER_RAN,
            )
            rec.check(
                f"{user} forged owners",
                sorted({field(t, "metadata", "owner") for t in items(forged)}),
            )
            assistants = await rec.request(
                f"{user} assistants search",
                "POST",
                "/assistants/search",
                json={"limit": 1000},
                headers=headers,
            )
            rec.check(
                f"{user} assistant owners",
                sorted({str(field(a, "metadata", "owner")) for a in items(assistants)}),
            )
            await rec.request(
                f"{user} assistants count", "POST", "/assistants/count", json={}, headers=headers
            )
            crons = await rec.request(
                f"{user} crons search",
                "POST",
                "/runs/crons/search",
                json={"limit": 1000},
                headers=headers,
            )
            rec.check(
                f"{user} cron owners",
                sorted({str(field(c, "metadata", "owner")) for c in items(crons)}),
            )
            crons_count = await rec.request(
                f"{user} crons count", "POST", "/runs/crons/count", json={}, headers=headers
            )
            rec.check(f"{user} crons count agrees", crons_count.json() == len(items(crons)))

    await compare(clients, scenario)


async def test_store(clients: Clients) -> None:
    async def scenario(rec: Recorder) -> None:
        await alice_world(rec)
        params = {"namespace": "prefs", "key": "theme"}
        await rec.request(
            "alice get", "GET", "/store/items", params=params, headers=ALICE, body=True
        )
        await rec.request("bob get", "GET", "/store/items", params=params, headers=BOB, body=True)
        await rec.request(
            "admin get alice's",
            "GET",
            "/store/items",
            params={"namespace": "alice.prefs", "key": "theme"},
            headers=ADMIN,
            body=True,
        )
        for user in ("alice", "bob"):
            found = await rec.request(
                f"{user} search",
                "POST",
                "/store/items/search",
                json={"namespace_prefix": ["prefs"]},
                headers=AS[user],
                nested=("items[]",),
            )
            rec.check(
                f"{user} search namespaces",
                sorted({tuple(field(i, "namespace") or ()) for i in items(field(found, "items"))}),
            )
            namespaces = await rec.request(
                f"{user} namespaces",
                "POST",
                "/store/namespaces",
                json={"prefix": ["prefs"]},
                headers=AS[user],
            )
            rec.kept[f"{user} namespaces"] = field(namespaces, "namespaces")
        # Bob deleting "the same" item deletes in his own namespace: alice keeps hers.
        await rec.request(
            "bob delete",
            "DELETE",
            "/store/items",
            json={"namespace": ["prefs"], "key": "theme"},
            headers=BOB,
        )
        await rec.request(
            "alice get after bob", "GET", "/store/items", params=params, headers=ALICE, body=True
        )
        everything = await rec.send("POST", "/store/items/search", json={}, headers=ADMIN)
        rec.kept["admin search everything"] = everything.status_code

    stead, official = await compare(clients, scenario)
    assert (
        stead.kept["alice namespaces"] == official.kept["alice namespaces"] == [["alice", "prefs"]]
    )
    # Official quirk: bob's GET of a missing item created an empty ["bob", "prefs"] namespace.
    assert (stead.kept["bob namespaces"], official.kept["bob namespaces"]) == (
        [],
        [["bob", "prefs"]],
    )
    # Official quirk: a search without namespace_prefix by the admin (no rewrite) is a 500 there.
    assert (stead.kept["admin search everything"], official.kept["admin search everything"]) == (
        200,
        500,
    )


async def test_missing_and_invalid_credentials(clients: Clients) -> None:
    async def scenario(rec: Recorder) -> None:
        for method, path, body in [
            ("POST", "/threads", {}),
            ("POST", "/threads/search", {}),
            ("GET", f"/threads/{MISSING}", None),
            ("POST", "/assistants/search", {}),
            ("POST", "/runs/wait", {"assistant_id": "echo", "input": {}}),
            ("POST", "/runs/stream", {"assistant_id": "echo", "input": {}}),
            ("POST", "/runs/crons/search", {}),
            ("POST", "/store/items/search", {}),
        ]:
            await rec.request(f"anonymous {method} {path}", method, path, json=body, body=True)
        for label, headers in [
            ("invalid token", {"Authorization": "Bearer nope"}),
            ("not bearer", {"Authorization": "Basic YWxpY2U6eA=="}),
        ]:
            await rec.request(label, "POST", "/threads/search", json={}, headers=headers, body=True)
        await rec.request("anonymous ok", "GET", "/ok", body=True)

    await compare(clients, scenario)


async def test_info_and_docs_are_protected_on_stead_only(clients: Clients) -> None:
    # Intended difference (README, Authentication: "/info, /docs and /openapi.json are protected
    # too unless listed in auth.open_paths"): the official server leaves them open.
    async def scenario(rec: Recorder) -> None:
        for path in ("/info", "/docs", "/openapi.json"):
            rec.kept[path] = (await rec.send("GET", path)).status_code
            rec.kept[f"{path} as alice"] = (await rec.send("GET", path, headers=ALICE)).status_code

    stead, official = await run_both(clients, scenario)
    assert stead.kept == {
        "/info": 401,
        "/info as alice": 200,
        "/docs": 401,
        "/docs as alice": 200,
        "/openapi.json": 401,
        "/openapi.json as alice": 200,
    }
    assert set(official.kept.values()) == {200}


@pytest.fixture(scope="module")
def partial_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Urls]:
    graphs = write_graphs_dir(tmp_path_factory.mktemp("partial"), "auth_threads_only.py")
    with both_servers(graphs) as urls:
        yield urls


async def test_an_action_no_handler_covers_is_refused_on_stead_only(partial_urls: Urls) -> None:
    # Intended difference (README, Authentication: "an action none of them covers is refused with
    # 403"): auth_threads_only.py has only @auth.on.threads; the official server allows the rest.
    async def scenario(rec: Recorder) -> None:
        rec.kept["threads create"] = (await rec.send("POST", "/threads", json={})).status_code
        refused = await rec.send("POST", "/assistants/search", json={})
        rec.kept["assistants search"] = refused.status_code
        rec.kept["store put"] = (
            await rec.send(
                "PUT", "/store/items", json={"namespace": ["n"], "key": "k", "value": {}}
            )
        ).status_code

    async with _clients(partial_urls) as pair:
        stead, official = await run_both(pair, scenario)
    assert stead.kept == {"threads create": 200, "assistants search": 403, "store put": 403}
    assert official.kept == {"threads create": 200, "assistants search": 200, "store put": 204}
