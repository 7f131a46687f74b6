"""OpenTelemetry traces of a live `stead run`, exported over OTLP/HTTP to a receiver in the test:
the request span continues the client's `traceparent`, and the run's span (with its queue wait
beside it) is a child of the request that created the run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.conftest import GRAPHS_CONFIG
from tests.support.servers import HOST, stead_server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"


class OtlpReceiver:
    """Takes OTLP/HTTP protobuf exports on /v1/traces and keeps every span."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                export = ExportTraceServiceRequest.FromString(body)
                for resource_spans in export.resource_spans:
                    for scope_spans in resource_spans.scope_spans:
                        receiver.spans += [_span(span) for span in scope_spans.spans]
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}"

    def named(self, name: str, timeout: float = 15) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [span for span in self.spans if span["name"] == name]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no span {name!r} among {[s['name'] for s in self.spans]}")

    def ancestors(self, span: dict[str, Any]) -> list[str]:
        """The span ids above `span`, nearest first (the handler's own spans sit between the
        request's span and what the handler started)."""
        by_id = {s["span_id"]: s for s in self.spans}
        chain, parent = [], span["parent_span_id"]
        while parent in by_id:
            chain.append(parent)
            parent = by_id[parent]["parent_span_id"]
        return chain


def _span(span: Any) -> dict[str, Any]:
    return {
        "name": span.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex(),
        "attributes": {a.key: a.value.string_value or a.value.int_value for a in span.attributes},
        "start": span.start_time_unix_nano,
        "end": span.end_time_unix_nano,
    }


@pytest.fixture(scope="module")
def traced() -> Iterator[tuple[str, OtlpReceiver]]:
    receiver = OtlpReceiver()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    try:
        with stead_server(GRAPHS_CONFIG, env=env) as server:
            yield server.url, receiver
    finally:
        receiver.server.shutdown()


def test_a_run_is_traced_under_the_request_that_created_it(
    traced: tuple[str, OtlpReceiver],
) -> None:
    url, receiver = traced
    with httpx.Client(base_url=url, timeout=30) as http:
        thread_id = http.post("/threads", json={}).json()["thread_id"]
        answer = http.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "echo", "input": {"text": "traced"}},
            headers={"traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"},
        )
        assert answer.status_code == 200

    request = receiver.named("POST /threads/{thread_id}/runs/wait")
    assert request["trace_id"] == TRACE_ID
    assert request["parent_span_id"] == CLIENT_SPAN_ID
    assert request["attributes"]["http.response.status_code"] == 200

    run = receiver.named("run echo")
    assert run["trace_id"] == TRACE_ID and request["span_id"] in receiver.ancestors(run)
    assert run["attributes"]["stead.thread_id"] == thread_id
    assert run["attributes"]["stead.run_status"] == "success"
    assert request["start"] <= run["start"] <= run["end"] <= request["end"]

    waited = receiver.named("queue wait")
    assert waited["trace_id"] == TRACE_ID and waited["parent_span_id"] == run["parent_span_id"]
    assert waited["end"] <= run["start"] + 50_000_000  # claimed, then started

    # A request without a traceparent starts a trace of its own.
    created = receiver.named("POST /threads")
    assert created["trace_id"] != TRACE_ID and created["parent_span_id"] == ""


async def test_without_tracing_no_trace_context_is_stored(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    run = await client.runs.create(thread["thread_id"], "echo", input={"text": "x"})
    assert "trace_context" not in run["kwargs"]
