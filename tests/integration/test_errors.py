"""Every error is `{"detail": ...}` JSON with a fitting status, and the keep-alive connection it
came on stays usable: a graph refusing its state is the graph's answer (422 with its message),
and a bug anywhere in the server is a JSON 500 with the traceback in the log."""

from __future__ import annotations

import http.client
import json
import textwrap
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import GRAPHS_DIR
from tests.support.servers import StartedServer, stead_server

ROBOT = [{"role": "robot", "content": "beep"}]
REFUSAL = "Unexpected message type: 'robot'"


class Connection:
    """One HTTP/1.1 keep-alive connection: a request after the server dropped it fails, and
    `socket` tells whether a request went out on the same one."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)

    @property
    def socket(self) -> Any:
        return self._conn.sock

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, http.client.HTTPResponse, Any]:
        payload = json.dumps(body) if body is not None else None
        sent = {"content-type": "application/json", **(headers or {})}
        self._conn.request(method, path, body=payload, headers=sent)
        response = self._conn.getresponse()
        assert response.getheader("content-type") == "application/json", response.headers
        return response.status, response, json.loads(response.read())

    def close(self) -> None:
        self._conn.close()


@pytest.fixture
def conn(url: str) -> Iterator[Connection]:
    connection = Connection(url)
    try:
        yield connection
    finally:
        connection.close()


def agent_thread(conn: Connection, messages: list[dict[str, str]]) -> str:
    status, _, thread = conn.request("POST", "/threads", {})
    assert status == 200
    run = {"assistant_id": "agent", "input": {"messages": messages}}
    status, _, _ = conn.request("POST", f"/threads/{thread['thread_id']}/runs/wait", run)
    assert status == 200
    return str(thread["thread_id"])


def test_state_of_a_thread_whose_run_failed_on_bad_input(conn: Connection) -> None:
    thread_id = agent_thread(conn, ROBOT)
    opened = conn.socket

    status, _, body = conn.request("GET", f"/threads/{thread_id}/state")
    assert (status, body["detail"][: len(REFUSAL)]) == (422, REFUSAL)
    status, _, thread = conn.request("GET", f"/threads/{thread_id}")
    assert (status, thread["status"]) == (200, "error")
    assert conn.socket is opened


def test_an_update_the_reducer_refuses_is_422_and_changes_nothing(conn: Connection) -> None:
    thread_id = agent_thread(conn, [{"role": "user", "content": "hi"}])
    _, _, before = conn.request("GET", f"/threads/{thread_id}/state")
    opened = conn.socket

    status, _, body = conn.request(
        "POST", f"/threads/{thread_id}/state", {"values": {"messages": ROBOT}}
    )
    assert (status, body["detail"][: len(REFUSAL)]) == (422, REFUSAL)
    status, _, after = conn.request("GET", f"/threads/{thread_id}/state")
    assert status == 200
    assert after["checkpoint_id"] == before["checkpoint_id"]
    assert len(after["values"]["messages"]) == 2
    # A node the graph does not have is a bad request, as on the official server.
    status, _, body = conn.request(
        "POST", f"/threads/{thread_id}/state", {"values": {"messages": []}, "as_node": "nope"}
    )
    assert (status, body) == (400, {"detail": "Node nope does not exist"})
    assert conn.socket is opened


def test_supersteps_the_reducer_refuses_leave_no_thread(conn: Connection) -> None:
    thread_id = str(uuid.uuid4())
    body = {
        "thread_id": thread_id,
        "metadata": {"graph_id": "agent"},
        "supersteps": [{"updates": [{"values": {"messages": ROBOT}, "as_node": "call_model"}]}],
    }
    status, _, refused = conn.request("POST", "/threads", body)
    assert (status, refused["detail"][: len(REFUSAL)]) == (422, REFUSAL)
    status, _, _ = conn.request("GET", f"/threads/{thread_id}")
    assert status == 404


@pytest.fixture(scope="module")
def buggy_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    """An authentication handler with a bug: it raises for one token."""
    project = tmp_path_factory.mktemp("buggy-auth")
    (project / "buggy_auth.py").write_text(
        textwrap.dedent(
            """
            from langgraph_sdk import Auth

            auth = Auth()


            @auth.authenticate
            async def authenticate(authorization: str | None) -> str:
                if authorization == "Bearer bug":
                    raise RuntimeError("the handler has a bug")
                return "someone"
            """
        )
    )
    config = {
        "graphs": {"echo": f"{GRAPHS_DIR / 'agent.py'}:echo"},
        "auth": {"path": "./buggy_auth.py:auth"},
    }
    (project / "langgraph.json").write_text(json.dumps(config))
    with stead_server(project / "langgraph.json") as server:
        yield server


def test_a_bug_is_a_json_500_with_its_traceback_in_the_log(
    buggy_auth_server: StartedServer,
) -> None:
    conn = Connection(buggy_auth_server.url)
    try:
        status, _, _ = conn.request("POST", "/threads/search", {})
        assert status == 200
        opened = conn.socket

        headers = {"authorization": "Bearer bug", "x-request-id": "bug-1"}
        status, response, body = conn.request("POST", "/threads/search", {}, headers)
        assert (status, body) == (500, {"detail": "Internal Server Error"})
        assert response.getheader("x-request-id") == "bug-1"
        status, _, _ = conn.request("POST", "/threads/search", {})
        assert status == 200
        assert conn.socket is opened
    finally:
        conn.close()
    log = buggy_auth_server.log_containing("RuntimeError: the handler has a bug")
    [failure] = [line for line in log.splitlines() if "unhandled error in POST" in line]
    assert "request_id=bug-1" in failure
