"""Prometheus metrics of one Stead process, on a registry of its own.

Counters and histograms are updated where things happen (requests, runs, webhooks, crons,
streams). Gauges of the queue and of the stores' health are set just before each scrape from
the database and Redis (services/health.py), so any replica reports the whole queue.
The `lg_api_` series keep the official server's names (and its `METRIC_PREFIX`), so that its
users' queries and KEDA triggers keep working.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from stead import __version__

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The official server's prefix for its own series; METRIC_PREFIX renames them as it does there.
LG_API_PREFIX = os.environ.get("METRIC_PREFIX", "lg_api_")
# The official server's latency buckets, in milliseconds.
_LG_API_LATENCY_BUCKETS_MS = (
    10,
    100,
    500,
    1000,
    5000,
    15000,
    30000,
    60000,
    120000,
    300000,
    600000,
    1800000,
    3600000,
)
_RUN_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
_QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

ATTEMPT_OUTCOMES = ("started", "retried", "lease_lost", "exceeded_max")


@dataclass(frozen=True)
class QueueFigures:
    """The whole queue, read from the database at scrape time."""

    pending: int
    running: int
    oldest_pending_age_seconds: float | None


class Metrics:
    def __init__(self) -> None:
        # No `_created` series: nobody queries them, and they double the exposition.
        disable_created_metrics()
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by route template",
            ["method", "path", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (to its last byte)",
            ["method", "path"],
            registry=registry,
        )
        self.lg_api_requests = Counter(
            f"{LG_API_PREFIX}http_requests_total",
            "HTTP requests (the official server's name)",
            ["method", "path", "status"],
            registry=registry,
        )
        self.lg_api_latency = Histogram(
            f"{LG_API_PREFIX}http_requests_latency",
            "HTTP request latency in milliseconds",
            ["method", "path"],
            buckets=_LG_API_LATENCY_BUCKETS_MS,
            registry=registry,
        )
        self.workers_max = Gauge(
            f"{LG_API_PREFIX}workers_max", "Run slots of this process", registry=registry
        )
        self.workers_active = Gauge(
            f"{LG_API_PREFIX}workers_active", "Run slots in use", registry=registry
        )
        self.workers_available = Gauge(
            f"{LG_API_PREFIX}workers_available", "Run slots free", registry=registry
        )
        self.pending_runs = Gauge(
            f"{LG_API_PREFIX}num_pending_runs", "Runs waiting in the queue", registry=registry
        )
        self.running_runs = Gauge(
            f"{LG_API_PREFIX}num_running_runs", "Runs executing", registry=registry
        )
        self.oldest_pending_age = Gauge(
            "stead_oldest_pending_run_age_seconds",
            "Age of the oldest pending run (0 when none)",
            registry=registry,
        )
        self.runs = Counter(
            "stead_runs_total", "Runs ended, by status", ["status", "graph_id"], registry=registry
        )
        self.run_duration = Histogram(
            "stead_run_duration_seconds",
            "Execution time of runs that ended",
            ["graph_id"],
            buckets=_RUN_DURATION_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "stead_run_queue_wait_seconds",
            "Time from a run's creation to its claim",
            buckets=_QUEUE_WAIT_BUCKETS,
            registry=registry,
        )
        self.attempts = Counter(
            "stead_run_attempts_total",
            "Run attempts, by what became of them",
            ["outcome"],
            registry=registry,
        )
        self.stream_subscribers = Gauge(
            "stead_stream_subscribers", "Clients streaming from this process", registry=registry
        )
        self.stream_events = Counter(
            "stead_stream_events_total", "Events sent to streaming clients", registry=registry
        )
        self.webhook_deliveries = Counter(
            "stead_webhook_deliveries_total",
            "Webhook deliveries, by outcome",
            ["outcome"],
            registry=registry,
        )
        self.cron_firings = Counter(
            "stead_cron_firings_total", "Runs started by crons", registry=registry
        )
        self.database_up = Gauge(
            "stead_database_up", "1 when the database answers", registry=registry
        )
        self.redis_up = Gauge(
            "stead_redis_up", "1 when Redis answers (1 without Redis)", registry=registry
        )
        self.db_pool_in_use = Gauge(
            "stead_db_pool_in_use", "Database connections checked out", registry=registry
        )
        self.db_pool_size = Gauge(
            "stead_db_pool_size", "Database connections the pool may hold", registry=registry
        )
        self.build_info = Gauge(
            "stead_build_info",
            "Stead's version and runtime",
            ["version", "runtime"],
            registry=registry,
        )
        self._slots = 0
        self._slots_in_use = 0
        # Each request's four series by (method, route, status): `labels` builds its key and
        # takes a lock at every call, two thirds of a request's metrics.
        self._request_series: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}
        self._preset_labels()

    def _preset_labels(self) -> None:
        """Series with known labels exist from the start at 0, so rates and alerts see them."""
        for outcome in ATTEMPT_OUTCOMES:
            self.attempts.labels(outcome)
        for outcome in ("delivered", "failed"):
            self.webhook_deliveries.labels(outcome)

    def describe_process(self, runtime: str, slots: int) -> None:
        self.build_info.labels(__version__, runtime).set(1)
        self._slots = slots
        self.workers_max.set(slots)
        self.set_slots_in_use(0)

    def observe_request(self, method: str, path: str, status: int, seconds: float) -> None:
        key = (method, path, status)
        series = self._request_series.get(key)
        if series is None:
            series = self._request_series[key] = (
                self.http_requests.labels(method, path, status),
                self.http_duration.labels(method, path),
                self.lg_api_requests.labels(method, path, status),
                self.lg_api_latency.labels(method, path),
            )
        requests, duration, lg_requests, lg_latency = series
        requests.inc()
        duration.observe(seconds)
        lg_requests.inc()
        lg_latency.observe(seconds * 1000)

    def set_slots_in_use(self, active: int) -> None:
        self._slots_in_use = active
        self.workers_active.set(active)
        self.workers_available.set(max(0, self._slots - active))

    def set_queue(self, queue: QueueFigures) -> None:
        self.pending_runs.set(queue.pending)
        self.running_runs.set(queue.running)
        self.oldest_pending_age.set(queue.oldest_pending_age_seconds or 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def render_json(self, queue: QueueFigures) -> dict[str, Any]:
        """The official server's `/metrics?format=json` body."""
        requests = [
            {
                "method": sample.labels["method"],
                "path": sample.labels["path"],
                "status": int(sample.labels["status"]),
                "count": int(sample.value),
            }
            for metric in self.lg_api_requests.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        ]
        maximum, active = self._slots, self._slots_in_use
        return {
            "queue": {
                "n_pending": queue.pending,
                "n_running": queue.running,
                "pending_runs_wait_time_max_secs": queue.oldest_pending_age_seconds,
            },
            "api": {"http_requests_total": requests},
            "workers": {"max": maximum, "active": active, "available": max(0, maximum - active)},
        }


# One per process: every part of the process reports to it.
METRICS = Metrics()
