"""The LangGraph SDK's own integration suite, unchanged, against `stead run` serving its graphs.

The suite and its graphs come from the pinned langgraph-sdk sdist (see tests/support/sdk_suite.py).
Stead runs on the session's runtime: embedded SQLite, or PostgreSQL + Redis with
STEAD_TEST_DATABASE=postgres. Every test must pass except the few that race inside the SDK.
"""

from __future__ import annotations

import pytest

from tests.support.sdk_suite import EXPECTED_TEST_COUNT, SUITE_TIMEOUT, run_isolated, suite_dir


@pytest.mark.timeout(SUITE_TIMEOUT + 300)
def test_sdk_integration_suite_passes_against_stead() -> None:
    suite_dir()  # fetched here, outside the namespace, which has no network
    report = run_isolated()
    print(report.summary())
    assert len(report.cases) == EXPECTED_TEST_COUNT, report.output[-3000:]
    failed = [case.test_id for case in report.gating_failures]
    assert not failed, f"{report.summary()}\n\nlast lines of the server log:\n{report.server_log}"
