"""The routes are ordered busiest first (stead.app.ROUTERS), and that order decides no request:
no two routes that share a method match the same path, and the one pair of paths of different
modules that overlap (for a 405's Allow header) keeps its crons-first order.

Reference: src/stead/app.py; issue 16.
"""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from stead.app import create_app
from stead.cli import load_graph_specs
from stead.config import load_settings
from tests.conftest import GRAPHS_CONFIG


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[APIRoute]:
    settings = load_settings(GRAPHS_CONFIG, data_dir=tmp_path_factory.mktemp("routes"))
    app = create_app(settings, load_graph_specs(settings))
    return [route for route in app.router.routes if isinstance(route, APIRoute)]


def _overlap(first: str, second: str) -> bool:
    """Whether some path matches both templates (a `{param}` matches one segment)."""
    a, b = first.strip("/").split("/"), second.strip("/").split("/")
    return len(a) == len(b) and all(
        x == y or x.startswith("{") or y.startswith("{") for x, y in zip(a, b, strict=True)
    )


def test_no_two_routes_of_one_method_match_the_same_path(routes: list[APIRoute]) -> None:
    clashes = [
        (first.path, second.path)
        for i, first in enumerate(routes)
        for second in routes[i + 1 :]
        if first.methods & second.methods and _overlap(first.path, second.path)
    ]
    assert clashes == []


def test_paths_of_different_modules_overlap_only_where_the_order_is_kept(
    routes: list[APIRoute],
) -> None:
    overlapping = [
        (first.path, first.endpoint.__module__, second.path, second.endpoint.__module__)
        for i, first in enumerate(routes)
        for second in routes[i + 1 :]
        if first.endpoint.__module__ != second.endpoint.__module__
        and _overlap(first.path, second.path)
    ]
    assert set(overlapping) == {
        (
            "/threads/{thread_id}/runs/crons",
            "stead.api.crons",
            "/threads/{thread_id}/runs/{run_id}",
            "stead.api.runs",
        )
    }


def test_a_runs_requests_are_matched_among_the_first_routes(routes: list[APIRoute]) -> None:
    position = {
        (route.path, method): i for i, route in enumerate(routes) for method in route.methods
    }
    for path in (
        "/runs/wait",
        "/threads/{thread_id}/runs/wait",
        "/threads/{thread_id}/runs/stream",
    ):
        assert position[(path, "POST")] < 20, path
