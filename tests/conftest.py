"""Shared fixtures: one live `stead run` process on the test graphs for the whole session."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client, get_sync_client
from langgraph_sdk.client import LangGraphClient, SyncLangGraphClient

from tests.support.postgres import session_runtime_env
from tests.support.servers import StartedServer, stead_server

GRAPHS_DIR = Path(__file__).parent / "graphs"
GRAPHS_CONFIG = GRAPHS_DIR / "langgraph.json"

# The container tier has its own target and time budget (`make test-containers`).
collect_ignore = [] if os.environ.get("STEAD_TEST_CONTAINERS") == "1" else ["containers"]
# So has the scale tier, which seeds PostgreSQL with millions of rows (`make test-scale`).
if os.environ.get("STEAD_TEST_SCALE") != "1":
    collect_ignore.append("scale")


@pytest.fixture(scope="session")
def server() -> Iterator[StartedServer]:
    with contextlib.ExitStack() as stack:
        # STEAD_TEST_DATABASE=postgres: the same suite on the production runtime, a fresh
        # migrated PostgreSQL with Redis as the broker.
        env = {
            "BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "2",
            **session_runtime_env(stack, GRAPHS_CONFIG),
        }
        yield stack.enter_context(stead_server(GRAPHS_CONFIG, env=env))


@pytest.fixture(scope="session")
def url(server: StartedServer) -> str:
    return server.url


@pytest.fixture
async def client(url: str) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.http.client.aclose()


@pytest.fixture
def sync_client(url: str) -> Iterator[SyncLangGraphClient]:
    sdk = get_sync_client(url=url, api_key=None)
    try:
        yield sdk
    finally:
        sdk.http.client.close()


@pytest.fixture
async def http(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as raw:
        yield raw
