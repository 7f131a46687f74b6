"""A real Prometheus scraping a live `stead run` on PostgreSQL + Redis every second: after traffic
and runs (failing ones too), every dashboard panel and alert expression evaluates without error,
the seed's panels and the run panels have data, and stopping PostgreSQL fires SteadDatabaseDown."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import GRAPHS_CONFIG
from tests.monitoring.conftest import Prometheus, alert_rules, panel_expressions, prometheus
from tests.support.postgres import stead_migrate
from tests.support.servers import stead_server
from tests.support.services import Postgres, postgres_server, redis_server

# Panels that must show data after the traffic below: the seed's two and the runs'.
PANELS_WITH_DATA = {"Request Rate", "Response Time", "Runs ended, by status", "Run duration",
                    "Queue depth", "Worker slots", "Database and Redis"}  # fmt: skip


@dataclass
class Monitored:
    pg: Postgres
    url: str
    prometheus: Prometheus


@pytest.fixture(scope="module")
def monitored() -> Iterator[Monitored]:
    with postgres_server() as pg, redis_server() as redis:
        migrated = stead_migrate(GRAPHS_CONFIG, pg.url())
        assert migrated.returncode == 0, migrated.stderr
        env = {"DATABASE_URI": pg.url(), "REDIS_URI": redis.url}
        with stead_server(GRAPHS_CONFIG, env=env) as server:
            target = server.url.removeprefix("http://")
            with prometheus(target) as prom:
                _drive_traffic(server.url)
                _wait_for(lambda: _has_data(prom, "rate(http_requests_total[5m])"), 30)
                yield Monitored(pg, server.url, prom)


def _drive_traffic(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as http:
        for text in ("one", "two", "three"):
            thread = http.post("/threads", json={}).json()["thread_id"]
            done = http.post(
                f"/threads/{thread}/runs/wait",
                json={"assistant_id": "echo", "input": {"text": text}},
            )
            assert done.status_code == 200
        failing = http.post("/threads", json={}).json()["thread_id"]
        http.post(f"/threads/{failing}/runs/wait", json={"assistant_id": "failing", "input": {}})
        assert http.get("/threads/00000000-0000-4000-8000-000000000000").status_code == 404
        streamed = http.post("/runs/stream", json={"assistant_id": "echo", "input": {"text": "s"}})
        assert streamed.status_code == 200


def test_every_panel_and_alert_expression_evaluates(monitored: Monitored) -> None:
    expressions = panel_expressions() + [(rule["alert"], rule["expr"]) for rule in alert_rules()]
    failures = {}
    for name, expr in expressions:
        answer = monitored.prometheus.query(expr)
        if answer.get("status") != "success":
            failures[name] = answer
    assert not failures


def test_the_seeds_panels_and_the_run_panels_have_data(monitored: Monitored) -> None:
    _wait_for(lambda: _has_data(monitored.prometheus, "sum(stead_runs_total)"), 20)
    empty = [
        title
        for title, expr in panel_expressions()
        if title in PANELS_WITH_DATA and not _has_data(monitored.prometheus, expr)
    ]
    assert not empty
    errors = monitored.prometheus.query('sum(stead_runs_total{status="error",graph_id="failing"})')
    assert float(errors["data"]["result"][0]["value"][1]) == 1


def test_stopping_postgresql_fires_the_database_alert(monitored: Monitored) -> None:
    assert "SteadDatabaseDown" not in _firing(monitored.prometheus)
    monitored.pg.stop()
    try:
        _wait_for(lambda: "SteadDatabaseDown" in _firing(monitored.prometheus), 30)
    finally:
        monitored.pg.start()
    _wait_for(lambda: "SteadDatabaseDown" not in _firing(monitored.prometheus), 30)


def _firing(prom: Prometheus) -> set[str]:
    return {alert["labels"]["alertname"] for alert in prom.alerts() if alert["state"] == "firing"}


def _has_data(prom: Prometheus, expr: str) -> bool:
    answer = prom.query(expr)
    return answer.get("status") == "success" and bool(answer["data"]["result"])


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
