"""Unknown fields in request bodies are ignored, as the official server ignores them, and named
in one warning line per request; a known field of the wrong type is still refused with 422.

Official SDKs send fields the API does not define: the JS SDK's `runs.createBatch` sends
`assistantId` beside `assistant_id`, the Python SDK's batch `RunCreate` may carry `thread_id`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.support.servers import StartedServer

Ids = dict[str, str]

# Crons are created disabled, so that they never start runs in the shared server, and marked, to be
# deleted afterwards.
DISABLED_CRON = {
    "assistant_id": "echo",
    "schedule": "0 0 1 1 *",
    "enabled": False,
    "metadata": {"suite": "lenient-bodies"},
}
# Every operation that takes a JSON body, with a small valid body for it.
VALID_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/assistants"): {"graph_id": "echo"},
    ("PATCH", "/assistants/{assistant_id}"): {"metadata": {"m": 1}},
    ("POST", "/assistants/search"): {},
    ("POST", "/assistants/count"): {},
    ("POST", "/assistants/{assistant_id}/versions"): {},
    ("POST", "/assistants/{assistant_id}/latest"): {"version": 1},
    ("POST", "/threads"): {},
    ("PATCH", "/threads/{thread_id}"): {"metadata": {"m": 1}},
    ("POST", "/threads/search"): {},
    ("POST", "/threads/count"): {},
    ("POST", "/threads/prune"): {"thread_ids": []},
    ("POST", "/threads/{thread_id}/state"): {"values": {"text": "edited"}},
    ("POST", "/threads/{thread_id}/state/checkpoint"): {"checkpoint": {}},
    ("POST", "/threads/{thread_id}/history"): {"limit": 1},
    ("POST", "/threads/{thread_id}/runs"): {"assistant_id": "echo", "input": {}},
    ("POST", "/threads/{thread_id}/runs/stream"): {"assistant_id": "echo", "input": {}},
    ("POST", "/threads/{thread_id}/runs/wait"): {"assistant_id": "echo", "input": {}},
    ("POST", "/runs"): {"assistant_id": "echo", "input": {}},
    ("POST", "/runs/stream"): {"assistant_id": "echo", "input": {}},
    ("POST", "/runs/wait"): {"assistant_id": "echo", "input": {}},
    ("POST", "/runs/batch"): [{"assistant_id": "echo", "input": {}}],
    ("POST", "/runs/cancel"): {"thread_id": "{waiting_thread_id}", "run_ids": ["{waiting_run_id}"]},
    ("POST", "/runs/crons"): DISABLED_CRON,
    ("POST", "/threads/{thread_id}/runs/crons"): DISABLED_CRON,
    ("PATCH", "/runs/crons/{cron_id}"): {"enabled": False},
    ("POST", "/runs/crons/search"): {},
    ("POST", "/runs/crons/count"): {},
    ("PUT", "/store/items"): {"namespace": ["lenient"], "key": "k", "value": {"v": 1}},
    ("DELETE", "/store/items"): {"namespace": ["lenient"], "key": "gone"},
    ("POST", "/store/items/search"): {},
    ("POST", "/store/namespaces"): {},
}


@pytest.fixture(scope="module")
def api(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def ids(api: httpx.Client) -> Iterator[Ids]:
    """An assistant, a thread with a finished run, another with a run waiting to start (one hour
    from now) and a disabled cron; removed afterwards."""
    assistant_id = api.post("/assistants", json={"graph_id": "echo"}).json()["assistant_id"]
    thread_id = api.post("/threads", json={}).json()["thread_id"]
    run = {"assistant_id": "echo", "input": {"text": "x"}}
    api.post(f"/threads/{thread_id}/runs/wait", json=run).raise_for_status()
    waiting_thread_id = api.post("/threads", json={}).json()["thread_id"]
    waiting = {"assistant_id": "echo", "after_seconds": 3600}
    waiting_run = api.post(f"/threads/{waiting_thread_id}/runs", json=waiting).json()
    cron_id = api.post("/runs/crons", json=DISABLED_CRON).json()["cron_id"]
    yield {
        "assistant_id": assistant_id,
        "thread_id": thread_id,
        "waiting_thread_id": waiting_thread_id,
        "waiting_run_id": waiting_run["run_id"],
        "cron_id": cron_id,
    }
    marked = {"metadata": DISABLED_CRON["metadata"], "limit": 100}
    for cron_row in api.post("/runs/crons/search", json=marked).json():
        api.delete(f"/runs/crons/{cron_row['cron_id']}")
    for thread in (thread_id, waiting_thread_id):
        api.delete(f"/threads/{thread}")
    api.delete(f"/assistants/{assistant_id}")


def test_every_body_is_covered(api: httpx.Client) -> None:
    """A new operation with a body joins the tests below."""
    document = api.get("/openapi.json").json()
    with_body = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }
    assert with_body == set(VALID_BODIES)


@pytest.mark.parametrize(("method", "template"), list(VALID_BODIES))
def test_unknown_field_is_ignored_with_a_warning(
    api: httpx.Client, server: StartedServer, ids: Ids, method: str, template: str
) -> None:
    unknown = f"unknown_{uuid.uuid4().hex[:8]}"
    body = _filled(VALID_BODIES[(method, template)], ids)
    if isinstance(body, list):
        body = [{**item, unknown: 1} for item in body]
    else:
        body[unknown] = 1

    response = api.request(method, template.format(**ids), json=body)

    assert response.status_code < 300, response.text
    server.log_containing(f"{method} {template}: ignored unknown body field(s) '{unknown}'")


def test_unknown_fields_are_named_once_per_request_with_their_path(
    api: httpx.Client, server: StartedServer, ids: Ids
) -> None:
    marker = uuid.uuid4().hex[:8]
    item = {
        "assistant_id": "echo",
        "assistantId": "echo",
        f"a_{marker}": 1,
        "command": {"resume": None, f"b_{marker}": 1},
    }

    response = api.post("/runs/batch", json=[item, item])

    assert response.status_code == 200, response.text
    expected = f"POST /runs/batch: ignored unknown body field(s) 'assistantId', 'a_{marker}', "
    log = server.log_containing(expected + f"'command.b_{marker}' [stead.api]")
    assert log.count(f"a_{marker}") == 1


def test_a_field_name_cannot_break_the_log_line(api: httpx.Client, server: StartedServer) -> None:
    marker = uuid.uuid4().hex[:8]
    forged = f"x\n2026-01-01 00:00:00,000 ERROR stead.api [-]: forged {marker}"

    response = api.post("/assistants/count", json={forged: 1})

    assert response.status_code == 200
    log = server.log_containing(f"forged {marker}'")
    assert f"\n2026-01-01 00:00:00,000 ERROR stead.api [-]: forged {marker}" not in log


async def test_python_sdk_batch_with_thread_id_is_accepted(
    client: LangGraphClient, server: StartedServer
) -> None:
    """The SDK's `RunCreate` has `thread_id`; batch runs are stateless, so it is ignored."""
    thread = await client.threads.create()
    marker = uuid.uuid4().hex
    runs = await client.runs.create_batch(
        [
            {
                "assistant_id": "echo",
                "thread_id": thread["thread_id"],
                "input": {"text": "batch"},
                "metadata": {"marker": marker},
            }
        ]
    )

    assert [run["metadata"]["marker"] for run in runs] == [marker]
    assert runs[0]["thread_id"] != thread["thread_id"]
    server.log_containing("POST /runs/batch: ignored unknown body field(s) 'thread_id'")


@pytest.mark.parametrize(
    ("method", "path", "body", "wrong_field"),
    [
        (
            "POST",
            "/threads/{thread_id}/runs",
            {"assistant_id": "echo", "multitask_strategy": "sometimes", "unknown": 1},
            "multitask_strategy",
        ),
        (
            "POST",
            "/threads/{thread_id}/runs/wait",
            {"assistant_id": "echo", "checkpoint": {"checkpoint_id": 5}},
            "checkpoint.checkpoint_id",
        ),
        (
            "POST",
            "/runs/batch",
            [{"assistant_id": "echo", "after_seconds": "soon"}],
            "0.after_seconds",
        ),
        (
            "POST",
            "/runs/crons",
            {"assistant_id": "echo", "schedule": "0 0 1 1 *", "enabled": "maybe"},
            "enabled",
        ),
        ("PUT", "/store/items", {"namespace": "flat", "key": "k", "value": {}}, "namespace"),
        ("POST", "/threads/search", {"limit": "ten", "unknown": 1}, "limit"),
    ],
)
def test_known_field_of_the_wrong_type_is_422(
    api: httpx.Client, method: str, path: str, body: Any, wrong_field: str
) -> None:
    thread_id = api.post("/threads", json={}).json()["thread_id"]

    response = api.request(method, path.format(thread_id=thread_id), json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(wrong_field)
    assert api.get(f"/threads/{thread_id}/runs").json() == []


def _filled(body: Any, ids: Ids) -> Any:
    """``body`` with the `{name}` placeholders in its strings replaced by real ids."""
    if isinstance(body, dict):
        return {key: _filled(value, ids) for key, value in body.items()}
    if isinstance(body, list):
        return [_filled(item, ids) for item in body]
    return body.format(**ids) if isinstance(body, str) else body
