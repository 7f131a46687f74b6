"""A client waiting for a run in the process that executes it gets its answer before the run's
epilogue (its last log line, metrics, a stateless run's checkpoints deleted): on the one event
loop the epilogue would otherwise come first, and the client wait for it.

The test calls the application in-process, its `send` standing in for the server's transport,
which writes what it was sent at the end of the event loop's turn (stead.http_protocol).

Reference: src/stead/worker/executor.py (TURNS_TO_ANSWER); issue 16.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.types import Message

from stead.app import create_app
from stead.cli import load_graph_specs
from stead.config import load_settings
from tests.conftest import GRAPHS_CONFIG

_ENDED = " ended: "


class _Order(logging.Handler):
    """What happened, in order: the answer written to the socket, the run's last log line."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if _ENDED in record.getMessage():
            self.seen.append("run ended")

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            asyncio.get_running_loop().call_soon(self.seen.append, "answer written")


async def _post(app: FastAPI, path: str, body: dict[str, object], order: _Order) -> object:
    """The answer's JSON."""
    raw = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    received = False

    async def receive() -> Message:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": raw, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    answer = bytearray()

    async def send(message: Message) -> None:
        answer.extend(message.get("body", b""))
        await order.send(message)

    await app(scope, receive, send)
    return json.loads(answer)


@pytest.mark.parametrize(
    "path", ["/runs/wait", "/threads/{thread_id}/runs/wait"], ids=["stateless", "on a thread"]
)
async def test_the_answer_is_written_before_the_runs_epilogue(tmp_path: Path, path: str) -> None:
    settings = load_settings(GRAPHS_CONFIG, data_dir=tmp_path)
    app: FastAPI = create_app(settings, load_graph_specs(settings))  # type: ignore[assignment]
    order = _Order()
    worker_log = logging.getLogger("stead.worker")
    level = worker_log.level
    worker_log.addHandler(order)
    worker_log.setLevel(logging.INFO)
    try:
        async with app.router.lifespan_context(app):
            thread_id = ""
            if "{thread_id}" in path:
                created = await _post(app, "/threads", {}, _Order())
                thread_id = created["thread_id"]  # type: ignore[index]
            body: dict[str, object] = {"assistant_id": "echo", "input": {"text": "hi"}}
            for _ in range(3):
                answer = await _post(app, path.format(thread_id=thread_id), body, order)
                assert answer == {"text": "hi"}
                # The epilogue follows within a few turns.
                for _ in range(10):
                    await asyncio.sleep(0)
    finally:
        worker_log.removeHandler(order)
        worker_log.setLevel(level)
    assert order.seen == ["answer written", "run ended"] * 3


async def test_a_stateless_runs_epilogue_still_deletes_its_checkpoints(tmp_path: Path) -> None:
    settings = load_settings(GRAPHS_CONFIG, data_dir=tmp_path)
    app: FastAPI = create_app(settings, load_graph_specs(settings))  # type: ignore[assignment]
    order = _Order()
    async with app.router.lifespan_context(app):
        await _post(app, "/runs/wait", {"assistant_id": "echo", "input": {"text": "t"}}, order)
        for _ in range(10):
            await asyncio.sleep(0)
        checkpoints = [c async for c in app.state.runtime.checkpointer.alist(None)]
    assert order.seen == ["answer written"]
    assert checkpoints == []
