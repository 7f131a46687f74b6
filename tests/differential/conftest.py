"""Fixtures for the differential tests: Stead and the official server, side by side.

Both servers run on ``tests/graphs`` for the whole session. The official one comes from the
virtualenv named by ``$STEAD_OFFICIAL_VENV`` (or ``<repo>/.venvs/official``, created on first use,
which needs network access and takes a while).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from tests.conftest import GRAPHS_DIR
from tests.support.servers import ensure_official_venv, official_server, stead_server


class Urls(NamedTuple):
    stead: str
    official: str


class Clients(NamedTuple):
    """One HTTP client per server, each with its server's base URL."""

    stead: httpx.AsyncClient
    official: httpx.AsyncClient


@contextmanager
def both_servers(graphs_dir: Path) -> Iterator[Urls]:
    """Start Stead and the official server on ``graphs_dir/langgraph.json`` (concurrently: the
    official one is slow to import); stop both on exit."""
    ensure_official_venv()
    official = official_server(graphs_dir)
    env = {"BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "2"}
    with ThreadPoolExecutor(max_workers=1) as pool, ExitStack() as stack:
        official_started = pool.submit(official.__enter__)
        try:
            stead = stack.enter_context(stead_server(graphs_dir / "langgraph.json", env=env))
        finally:
            # Wait for the official server even if Stead failed, so that it is always stopped.
            official_url = official_started.result()
            stack.push(official)
        yield Urls(stead=stead.url, official=official_url)


@pytest.fixture(scope="session")
def server_urls() -> Iterator[Urls]:
    with both_servers(GRAPHS_DIR) as urls:
        yield urls


@pytest.fixture(scope="session")
async def clients(server_urls: Urls) -> AsyncIterator[Clients]:
    async with (
        httpx.AsyncClient(base_url=server_urls.stead, timeout=30) as stead,
        httpx.AsyncClient(base_url=server_urls.official, timeout=30) as official,
    ):
        yield Clients(stead=stead, official=official)
