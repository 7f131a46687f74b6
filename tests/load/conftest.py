"""One cluster for the whole tier: starting PostgreSQL, Redis and four Stead processes takes
about 20 s on the 2-core machine, and every test leaves it as it found it (two live workers,
Redis running)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import GRAPHS_CONFIG
from tests.support.load import http_client, load_cluster
from tests.support.topology import Cluster


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with load_cluster(GRAPHS_CONFIG, tmp_path_factory.mktemp("load-logs")) as built:
        yield built


# Here `http` is a client for hundreds of connections at once to any replica; the suite's `http`
# talks to its one session server, which the tier does not start.
@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with http_client() as client:
        yield client
