"""OpenTelemetry traces, when OTEL_EXPORTER_OTLP_ENDPOINT is set (or OTEL_ENABLED=true): a span per
HTTP request (FastAPI's own, continuing the client's `traceparent`), and per run attempt a span
joined to the request that created the run through the W3C trace context stored with the run
(so the trace crosses from an API process to a worker).

Off by default, and then nothing of it runs: no span is made, no context stored. The SDK's
own variables (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_*, OTEL_BSP_*) configure the export.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

# Where a run keeps the trace context of the request that created it (in its kwargs).
TRACE_CONTEXT_KEY = "trace_context"
_tracer = trace.get_tracer("stead")
_enabled = False
# FastAPI's own request spans, on the tracer provider installed here; its metrics and exception
# logs stay off (Prometheus and structlog have those), and probes make no spans.
_PROBE_PATHS = frozenset({"/ok", "/health", "/ready", "/metrics"})
FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": True,
    "metrics": False,
    "logs": False,
    "auto_configure": False,
    "exclude": lambda scope: scope.get("path") in _PROBE_PATHS,
}


def tracing_requested() -> bool:
    flag = (os.environ.get("OTEL_ENABLED") or "").strip().lower() in ("1", "true", "yes")
    return flag or bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure_tracing(enabled: bool) -> None:
    """Install the SDK's tracer provider with the OTLP/HTTP exporter; a no-op when not enabled."""
    global _enabled
    if not enabled or _enabled:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = os.environ.get("OTEL_SERVICE_NAME") or "stead"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _enabled = True


def shutdown_tracing() -> None:
    """Export what is still buffered before the process exits."""
    provider = trace.get_tracer_provider()
    if _enabled and hasattr(provider, "shutdown"):
        provider.shutdown()


def current_trace_context() -> dict[str, str]:
    """The active span's context (`traceparent`, `tracestate`) to store with a new run; empty
    when tracing is off."""
    carrier: dict[str, str] = {}
    if _enabled:
        propagate.inject(carrier)
    return carrier


@contextlib.contextmanager
def run_span(run: Mapping[str, Any], graph_id: str) -> Iterator[None]:
    """The span of one run attempt, a child of the creating request's span; the time the run
    waited in the queue is a span of its own beside it."""
    if not _enabled:
        yield
        return
    parent = propagate.extract(run["kwargs"].get(TRACE_CONTEXT_KEY) or {})
    attributes = {
        "stead.run_id": run["run_id"],
        "stead.thread_id": run["thread_id"],
        "stead.assistant_id": run["assistant_id"],
        "stead.graph_id": graph_id,
        "stead.attempt": run["attempt"],
    }
    _queue_wait_span(parent, run["created_at"], attributes)
    with _tracer.start_as_current_span(
        f"run {graph_id}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ):
        yield


def record_run_outcome(status: str) -> None:
    span = trace.get_current_span()
    span.set_attribute("stead.run_status", status)
    if status in ("error", "timeout"):
        span.set_status(Status(StatusCode.ERROR, status))


def _queue_wait_span(parent: Any, created_at: datetime, attributes: dict[str, Any]) -> None:
    started = int(created_at.timestamp() * 1e9)
    now = time.time_ns()
    if started < now:
        span = _tracer.start_span(
            "queue wait", context=parent, start_time=started, attributes=attributes
        )
        span.end(end_time=now)
