"""`/metrics` of a live `stead run` (both runtimes): exact counter deltas after known requests and
runs, route templates as labels, the histograms' buckets, the worker and queue gauges while runs
execute or wait, and the official server's JSON summary."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping

import httpx
from langgraph_sdk.client import LangGraphClient

from tests.conftest import GRAPHS_CONFIG
from tests.support.metrics import Sample, delta, scrape, scrape_url, value
from tests.support.servers import stead_server

# The official server's, in milliseconds.
LG_API_BUCKETS = [10, 100, 500, 1000, 5000, 15000, 30000, 60000, 120000, 300000, 600000, 1800000,
                  3600000, float("inf")]  # fmt: skip


async def test_requests_are_counted_under_their_route_template(http: httpx.AsyncClient) -> None:
    missing = str(uuid.uuid4())
    before = await scrape(http)
    for _ in range(2):
        assert (await http.get(f"/threads/{missing}")).status_code == 404
    assert (await http.post("/threads", json={})).status_code == 200
    after = await scrape(http)

    template = "/threads/{thread_id}"
    assert (
        delta(before, after, "http_requests_total", method="GET", path=template, status="404") == 2
    )
    assert (
        delta(
            before, after, "lg_api_http_requests_total", method="GET", path=template, status="404"
        )
        == 2
    )
    assert (
        delta(before, after, "http_requests_total", method="POST", path="/threads", status="200")
        == 1
    )
    assert (
        delta(before, after, "http_request_duration_seconds_count", method="GET", path=template)
        == 2
    )
    assert not any(missing in str(labels) for _, labels in after), "a raw path became a label"

    bucket = "lg_api_http_requests_latency_bucket"
    edges = sorted(
        (
            dict(labels)["le"]
            for name, labels in after
            if name == bucket
            and dict(labels)["path"] == template
            and dict(labels)["method"] == "GET"
        ),
        key=float,
    )
    assert [float(le) for le in edges] == LG_API_BUCKETS
    # Cumulative: each bucket holds those below it, the last all of them.
    counts = [value(after, bucket, method="GET", path=template, le=le) for le in edges]
    assert counts == sorted(counts) and counts[-1] == value(
        after, "lg_api_http_requests_latency_count", method="GET", path=template
    )


async def test_runs_are_counted_by_status_and_graph(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    before = await scrape(http)
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "echo", input={"text": "one"})
    await client.runs.wait(thread["thread_id"], "echo", input={"text": "two"})
    failing = await client.threads.create()
    await client.runs.wait(failing["thread_id"], "failing", input={"text": "x"}, raise_error=False)
    after = await scrape(http)

    assert delta(before, after, "stead_runs_total", status="success", graph_id="echo") == 2
    assert delta(before, after, "stead_runs_total", status="error", graph_id="failing") == 1
    assert delta(before, after, "stead_run_duration_seconds_count", graph_id="echo") == 2
    assert delta(before, after, "stead_run_attempts_total", outcome="started") == 3
    assert delta(before, after, "stead_run_queue_wait_seconds_count") == 3
    assert value(after, "stead_build_info", version="0.1.0", runtime=_runtime(after)) == 1


async def test_worker_and_queue_gauges_while_runs_execute_and_wait(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    busy = [await client.threads.create() for _ in range(2)]
    running = [
        await client.runs.create(t["thread_id"], "slow", input={"seconds": 30}) for t in busy
    ]
    # Queued behind the first: its thread is busy.
    waiting = await client.runs.create(
        busy[0]["thread_id"], "echo", input={"text": "later"}, multitask_strategy="enqueue"
    )
    try:
        await _until_running(client, running)
        await asyncio.sleep(1.0)
        samples = await scrape(http)
        assert value(samples, "lg_api_workers_active") >= 2
        assert value(samples, "lg_api_workers_available") == value(
            samples, "lg_api_workers_max"
        ) - value(samples, "lg_api_workers_active")
        assert value(samples, "lg_api_num_running_runs") >= 2
        assert value(samples, "lg_api_num_pending_runs") >= 1
        assert value(samples, "stead_oldest_pending_run_age_seconds") >= 1.0

        summary = (await http.get("/metrics", params={"format": "json"})).json()
        assert summary["queue"]["n_pending"] >= 1 and summary["queue"]["n_running"] >= 2
        assert summary["queue"]["pending_runs_wait_time_max_secs"] >= 1.0
        workers = summary["workers"]
        assert workers["active"] >= 2 and workers["available"] == workers["max"] - workers["active"]
        assert {"method", "path", "status", "count"} <= set(
            summary["api"]["http_requests_total"][0]
        )
    finally:
        for thread, run in zip(busy, running, strict=True):
            await client.runs.cancel(thread["thread_id"], run["run_id"])
        await client.runs.join(busy[0]["thread_id"], waiting["run_id"])


async def test_streams_are_counted_while_open_and_their_events_once_sent(
    http: httpx.AsyncClient, client: LangGraphClient
) -> None:
    thread = await client.threads.create()
    before = await scrape(http)
    subscribers_during: list[float] = []
    parts = 0
    # The pause keeps the stream open while it is scraped; a graph that finishes at once may have
    # sent everything and closed before the client has read its first part.
    async for _part in client.runs.stream(
        thread["thread_id"], "pausing", input={"pause": 1.0}, stream_mode="updates"
    ):
        parts += 1
        if parts == 1:
            subscribers_during.append(value(await scrape(http), "stead_stream_subscribers"))
    after = await scrape(http)
    assert subscribers_during[0] >= value(before, "stead_stream_subscribers") + 1
    assert value(after, "stead_stream_subscribers") == value(before, "stead_stream_subscribers")
    # Every event the SDK yielded, no heartbeat.
    assert delta(before, after, "stead_stream_events_total") == parts


async def test_readiness_names_each_check(http: httpx.AsyncClient) -> None:
    response = await http.get("/ready")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"] == checks["schema"] == checks["graphs"] == "ok"
    assert (await http.get("/ok", params={"check_db": 1})).json()["ok"] is True


def _runtime(samples: Mapping[Sample, float]) -> str:
    (runtime,) = {dict(labels)["runtime"] for name, labels in samples if name == "stead_build_info"}
    return runtime


async def _until_running(client: LangGraphClient, runs: list[dict[str, str]]) -> None:
    for _ in range(100):
        statuses = [(await client.runs.get(r["thread_id"], r["run_id"]))["status"] for r in runs]
        if all(status == "running" for status in statuses):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"runs not running: {statuses}")


def test_metric_prefix_renames_the_official_series() -> None:
    with stead_server(GRAPHS_CONFIG, env={"METRIC_PREFIX": "agents_"}) as server:
        httpx.post(f"{server.url}/threads", json={})
        names = {name for name, _ in scrape_url(server.url)}
    assert "agents_http_requests_total" in names and "agents_workers_max" in names
    assert not any(name.startswith("lg_api_") for name in names)
    assert "http_requests_total" in names
