"""Property-based fuzzing of every operation in Stead's own OpenAPI document, with schemathesis.

A live `stead run` (embedded runtime: SQLite, in-process queue and broker) on the hermetic test
graphs serves `/openapi.json`; for each operation schemathesis generates valid requests
(positive) and requests that break the schema (negative). No answer may be a 5xx, and every answer
must have a status code, content type and body that the document declares for the operation.

`schemathesis.pytest.from_fixture` cannot be used: it reads `Item._nodeid`, which pytest 9 no
longer has. The operations are therefore walked here, one subtest each, with Hypothesis driving
`operation.as_strategy()` directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import session_uses_postgres
from tests.support.servers import StartedServer, stead_server

# The PostgreSQL pass of `make test` runs tests/integration only; this guards a manual run with
# the variable set, since the server below is always the embedded one.
pytestmark = pytest.mark.skipif(
    session_uses_postgres() or "DATABASE_URI" in os.environ,
    reason="the fuzz test runs on the embedded runtime only",
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Per operation and generation mode: 58 operations x 2 modes x 25 keeps the run near a minute on
# a 2-core machine while still reaching every parameter of every body.
MAX_EXAMPLES = 25
# No operation should take long on made-up input; a stream that stayed open on a real thread would
# send heartbeats every 5 s, so this bounds the request rather than its reads.
REQUEST_TIMEOUT_SECONDS = 30


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[StartedServer]:
    # Its own server: the fuzzer leaves threads, assistants and store items behind.
    with stead_server(GRAPHS_CONFIG, env={"BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "2"}) as server:
        yield server


def test_every_operation(fuzz_server: StartedServer, subtests: pytest.Subtests) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 50, "the OpenAPI document lost operations"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            with subtests.test(operation=operation.label, mode=mode.value):
                try:
                    _fuzz(operation.as_strategy(mode))
                except Unsatisfiable:
                    # No parameters, or only ones any string satisfies: nothing breaks the schema.
                    if mode is GenerationMode.POSITIVE:
                        raise
                    pytest.skip("no request can break this operation's schema")


def _fuzz(cases: object) -> None:
    @settings(
        max_examples=MAX_EXAMPLES,
        # Reproducible in CI; a failure prints the request to replay with curl.
        derandomize=True,
        database=None,
        deadline=None,
        # Slow or filtered generation of big bodies is expected, not a problem with the test.
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case: Case) -> None:
        case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT_SECONDS)

    run()
