"""The README's Python tour runs as printed against the example graphs and prints what it says.

The code block is read from README.md, so the README cannot drift from what works.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.postgres import session_runtime_env
from tests.support.servers import REPO_ROOT, StartedServer, stead_server

EXAMPLES = REPO_ROOT / "examples" / "langgraph.json"
TOUR_HEADING = "## A short tour with the Python SDK"
README_URL = "http://127.0.0.1:8000"

# What the tour prints, line by line, as its comments in the README say.
EXPECTED_OUTPUT = [
    "You said: hello",
    "3 checkpoints; last reply: You said: hello",
    "{'question': \"Approve 'deploy'?\"}",
    "{'request': 'deploy', 'decision': 'yes'}",
    "You said: hi",
    "{'theme': 'dark'}",
]


def python_tour() -> str:
    """The first Python code block under the tour's heading."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index(TOUR_HEADING) :]
    block = re.search(r"^```python\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert block is not None, "the tour has no ```python block"
    return block.group(1)


@pytest.fixture(scope="module")
def example_server() -> Iterator[StartedServer]:
    with ExitStack() as stack:
        env = session_runtime_env(stack, EXAMPLES)
        yield stack.enter_context(stead_server(EXAMPLES, env=env))


def test_tour_runs_as_printed(example_server: StartedServer, tmp_path: Path) -> None:
    tour = python_tour()
    # The server listens on a free port; the tour talks to `make run`'s.
    assert tour.count(README_URL) == 1
    script = tmp_path / "tour.py"
    script.write_text(tour.replace(README_URL, example_server.url))

    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == EXPECTED_OUTPUT
