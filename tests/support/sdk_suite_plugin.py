"""pytest plugin loaded into the SDK suite's own run (see sdk_suite.py).

The suite's test_remote_graph_v3 hard-codes ``http://localhost:2024`` (the port of its docker
stack) instead of reading ``LANGGRAPH_INTEGRATION_URL`` like its other modules. Port 2024 may
belong to something else on the machine, so once that module is imported its ``URL`` constant is
pointed at the server under test; no file of the suite is changed.
"""

from __future__ import annotations

import os

import pytest

_HARD_CODED_MODULE = "test_remote_graph_v3"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    url = os.environ["LANGGRAPH_INTEGRATION_URL"]
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and module.__name__.endswith(_HARD_CODED_MODULE):
            module.URL = url
