"""The server's log, read as an operator reads it: one line per request, `LOG_LEVEL`, and
`LOG_JSON=true` JSON lines carrying the request, run, thread and assistant ids."""

from __future__ import annotations

import json
import logging
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from stead.observability.logs import PlainLineFormatter, PlainLines, log_context
from tests.support.servers import ServerStartError, StartedServer, stead_server

# A graph whose node logs through the standard library, as users' graphs do.
CHATTY_GRAPH = """
import logging
from typing import TypedDict

from langgraph.graph import START, StateGraph

log = logging.getLogger("chatty")


class State(TypedDict, total=False):
    text: str


def speak(state: State) -> State:
    log.info("node speaks: %s", state.get("text"))
    return state


graph = StateGraph(State).add_node("speak", speak).add_edge(START, "speak").compile()
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logs")
    (root / "chatty.py").write_text(textwrap.dedent(CHATTY_GRAPH))
    (root / "langgraph.json").write_text(json.dumps({"graphs": {"chatty": "./chatty.py:graph"}}))
    return root / "langgraph.json"


@pytest.fixture(scope="module")
def plain_server(project: Path) -> Iterator[StartedServer]:
    with stead_server(project) as server:
        yield server


@pytest.fixture(scope="module")
def json_server(project: Path) -> Iterator[StartedServer]:
    with stead_server(project, env={"LOG_JSON": "true"}) as server:
        yield server


def test_one_plain_line_per_request(plain_server: StartedServer) -> None:
    with httpx.Client(base_url=plain_server.url) as http:
        http.post("/threads", json={}, headers={"x-request-id": "plain-1"})
        missing = "00000000-0000-0000-0000-000000000000"
        http.get(f"/threads/{missing}", headers={"x-request-id": "plain-2"})

    log = plain_server.log_containing("request_id=plain-2")
    [created] = [line for line in log.splitlines() if "request_id=plain-1" in line]
    assert re.fullmatch(
        r"\S+Z \[info\s*\] POST /threads 200 (\d+)ms\s+\[stead\.access\] latency_ms=\1 "
        r"method=POST path=/threads request_id=plain-1 route=/threads status=200",
        created,
    ), created
    # A client error is a warning, and names the thread it was about.
    [refused] = [line for line in log.splitlines() if "request_id=plain-2" in line]
    assert re.match(rf"\S+Z \[warning\s*\] GET /threads/{missing} 404 \d+ms", refused), refused
    assert f"thread_id={missing}" in refused
    # uvicorn's access log would repeat each request in its own format.
    assert "HTTP/1.1" not in log


def test_json_lines_carry_the_ids(json_server: StartedServer) -> None:
    with httpx.Client(base_url=json_server.url, timeout=30) as http:
        thread_id = http.post("/threads", json={}).json()["thread_id"]
        response = http.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "chatty", "input": {"text": "hello"}},
            headers={"x-request-id": "json-1"},
        )
        assert response.status_code == 200
        [run] = http.get(f"/threads/{thread_id}/runs").json()

    log = json_server.log_containing(f"/threads/{thread_id}/runs/wait")
    lines = [json.loads(line) for line in log.splitlines()]
    for line in lines:
        assert {"event", "message", "level", "logger", "timestamp"} <= line.keys(), line
        assert line["message"] == line["event"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["timestamp"])

    [spoken] = [line for line in lines if line["event"] == "node speaks: hello"]
    assert _subset(spoken) == {
        "level": "info",
        "logger": "chatty",
        "run_id": run["run_id"],
        "thread_id": thread_id,
        "assistant_id": run["assistant_id"],
        "graph_id": "chatty",
        "request_id": "json-1",
    }
    [request] = [line for line in lines if line.get("path") == f"/threads/{thread_id}/runs/wait"]
    assert isinstance(request["latency_ms"], int)
    assert request == {
        "event": f"POST /threads/{thread_id}/runs/wait 200 {request['latency_ms']}ms",
        "message": f"POST /threads/{thread_id}/runs/wait 200 {request['latency_ms']}ms",
        "level": "info",
        "logger": "stead.access",
        "timestamp": request["timestamp"],
        "method": "POST",
        "path": f"/threads/{thread_id}/runs/wait",
        "route": "/threads/{thread_id}/runs/wait",
        "status": 200,
        "latency_ms": request["latency_ms"],
        "request_id": "json-1",
        "thread_id": thread_id,
    }


def test_log_level_warning_keeps_only_warnings_and_errors(project: Path) -> None:
    with (
        stead_server(project, env={"LOG_LEVEL": "warning"}) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        http.post("/threads", json={}, headers={"x-request-id": "quiet-1"})
        http.get(
            "/threads/00000000-0000-0000-0000-000000000000", headers={"x-request-id": "loud-1"}
        )
        log = server.log_containing("request_id=loud-1")
    assert "request_id=quiet-1" not in log
    assert "[info" not in log
    assert "[warning" in log


def test_an_unknown_log_level_stops_the_server_with_one_line(project: Path) -> None:
    with (
        pytest.raises(ServerStartError, match="LOG_LEVEL must be one of DEBUG, INFO"),
        stead_server(project, env={"LOG_LEVEL": "chatty"}, timeout=10),
    ):
        pass


def _subset(line: dict[str, Any]) -> dict[str, Any]:
    keys = ("level", "logger", "run_id", "thread_id", "assistant_id", "graph_id", "request_id")
    return {key: line.get(key) for key in keys}


# Fields as the server's processors leave them, and the odd ones ConsoleRenderer must quote or
# pad: strings with spaces, quotes or "=", non-strings, a long message, missing columns.
_LINES: list[dict[str, Any]] = [
    {
        "timestamp": "2026-12-04T12:00:00.000001Z",
        "level": "info",
        "event": "POST /runs/wait 200 4ms",
        "logger": "stead.access",
        "latency_ms": 4,
        "request_id": "0b7c-1",
    },
    {
        "timestamp": "2026-12-04T12:00:00Z",
        "level": "warning",
        "event": "run 1ef attempt 2 lost its lease, which is a rather long message",
        "logger": "stead.worker.executor",
        "run_id": "1ef",
        "note": "has spaces",
        "quoted": 'say "hi"',
        "pair": "a=b",
        "empty": "",
        "nothing": None,
        "values": {"text": "hi"},
    },
    {"event": "no timestamp, level or logger"},
    {"level": "debug", "event": 42, "logger_name": "x", "logger": "y", "z": 1.5},
    {"timestamp": "", "level": "critical", "event": None},
]


@pytest.mark.parametrize("fields", _LINES)
def test_plain_lines_read_as_structlogs_console_renderer_writes_them(
    fields: dict[str, Any],
) -> None:
    console = structlog.dev.ConsoleRenderer(colors=False)
    assert PlainLines()(None, "info", dict(fields)) == console(None, "info", dict(fields))


def test_a_plain_line_with_a_traceback_keeps_it() -> None:
    try:
        raise ValueError("boom")
    except ValueError as exc:
        line = PlainLines()(None, "error", {"event": "failed", "level": "error", "exc_info": exc})
    assert line.startswith("[error    ] failed")
    assert "Traceback (most recent call last)" in line and "ValueError: boom" in line


def _record(name: str, level: int, message: str, *args: Any, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord(name, level, "/src/module.py", 7, message, args, None)
    record.__dict__.update(extra)
    return record


_RECORDS: list[tuple[dict[str, Any], logging.LogRecord]] = [
    ({}, _record("stead.access", logging.INFO, "POST %s %d", "/runs/wait", 200, latency_ms=4)),
    (
        {"run_id": "1ef", "thread_id": "t 1"},
        _record("stead.worker", logging.WARNING, "run %s lost its lease", "1ef", run_id="override"),
    ),
    (
        {},
        _record(
            "uvicorn.error", logging.INFO, "Started %s", "x", color_message="\x1b[1mStarted\x1b[0m"
        ),
    ),
    ({"request_id": "r"}, _record("chatty", logging.DEBUG, 'say "hi" = %r', {"a": 1}, n=None)),
    ({}, _record("chatty", logging.CRITICAL, "a long message " * 4, values={"text": "hi"})),
]


@pytest.mark.parametrize(("context", "record"), _RECORDS)
def test_a_usual_record_reads_as_the_processor_formatter_writes_it(
    context: dict[str, Any], record: logging.LogRecord
) -> None:
    formatter = PlainLineFormatter()
    with log_context(context):
        short_way = formatter.format(record)
        processors_way = structlog.stdlib.ProcessorFormatter.format(formatter, record)
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z ")
    assert stamp.match(short_way) and stamp.match(processors_way)
    assert stamp.sub("", short_way) == stamp.sub("", processors_way)


@pytest.mark.parametrize(
    ("created", "stamp"),
    [(1796601600.0, "2026-12-07T00:00:00Z"), (1796601600.25, "2026-12-07T00:00:00.250000Z")],
)
def test_a_line_carries_its_records_time_as_structlog_stamps_it(created: float, stamp: str) -> None:
    record = _record("stead", logging.INFO, "hello")
    record.created = created
    assert PlainLineFormatter().format(record).startswith(stamp + " [info")


def test_a_record_with_a_traceback_keeps_it() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = _record("stead", logging.ERROR, "failed")
        record.exc_info = sys.exc_info()
    line = PlainLineFormatter().format(record)
    assert "[error    ] failed" in line
    assert "Traceback (most recent call last)" in line and "ValueError: boom" in line
