"""The LangGraph SDK's own integration suite, unchanged, against `stead run` serving its graphs.

The suite and its graphs come from the pinned langgraph-sdk sdist (see tests/support/sdk_suite.py).
Stead runs on the session's runtime: embedded SQLite, or PostgreSQL + Redis with
STEAD_TEST_DATABASE=postgres. Every test must pass except the few that race inside the SDK.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.support.postgres import session_runtime_env
from tests.support.sdk_suite import (
    EXPECTED_TEST_COUNT,
    SUITE_TIMEOUT,
    run_suite,
    suite_dir,
)
from tests.support.servers import stead_server

SERVER_LOG_LINES = 40


@pytest.mark.timeout(SUITE_TIMEOUT + 300)
def test_sdk_integration_suite_passes_against_stead() -> None:
    config = suite_dir() / "integration" / "langgraph.json"
    with ExitStack() as stack:
        env = {
            "BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "2",
            **session_runtime_env(stack, config),
        }
        server = stack.enter_context(stead_server(config, env=env, timeout=120.0))
        report = run_suite(server.url)
        server_log = "\n".join(server.log().splitlines()[-SERVER_LOG_LINES:])
    print(report.summary())
    assert len(report.cases) == EXPECTED_TEST_COUNT, report.output[-3000:]
    failed = [case.test_id for case in report.gating_failures]
    assert not failed, f"{report.summary()}\n\nlast lines of the server log:\n{server_log}"
