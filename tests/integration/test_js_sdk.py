"""The official JS SDK (`@langchain/langgraph-sdk`, pinned in tests/js/package-lock.json) against a
live `stead run`: the node tests in tests/js, and the README's JS tour as printed.

`npm ci` installs the locked packages into tests/js/node_modules once; a stamp holding the
lockfile's hash lets later runs skip it until the lockfile changes.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import StartedServer, stead_server

REPO_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = REPO_ROOT / "tests" / "js"
EXAMPLES = REPO_ROOT / "examples" / "langgraph.json"
INSTALLED_STAMP = JS_DIR / "node_modules" / ".stead-installed-lock"
NODE_TEST_FILES = sorted(path.name for path in JS_DIR.glob("*.test.js"))
NODE_TEST_TIMEOUT_MS = 60_000

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="session")
def node_packages() -> Path:
    """tests/js with its locked packages installed."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` is not on PATH: the JS SDK tests need Node.js 20+ and npm")
    lock = hashlib.sha256((JS_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not INSTALLED_STAMP.exists() or INSTALLED_STAMP.read_text() != lock:
        _run_or_fail(["npm", "ci", "--no-audit", "--no-fund"], timeout=240)
        INSTALLED_STAMP.write_text(lock)
    return JS_DIR


@pytest.fixture(scope="module")
def example_server() -> Iterator[StartedServer]:
    with stead_server(EXAMPLES) as server:
        yield server


def test_node_test_files_are_found() -> None:
    assert {"quickstart.test.js", "batch.test.js"} <= set(NODE_TEST_FILES)


@pytest.mark.parametrize("test_file", NODE_TEST_FILES)
def test_js_sdk(node_packages: Path, server: StartedServer, test_file: str) -> None:
    _run_or_fail(
        ["node", "--test", f"--test-timeout={NODE_TEST_TIMEOUT_MS}", test_file],
        env={"STEAD_URL": server.url},
    )


def test_readme_js_tour_runs_as_printed(node_packages: Path, example_server: StartedServer) -> None:
    tour = _readme_js_tour().replace("http://127.0.0.1:8000", example_server.url)

    output = _run_or_fail(["node", "--input-type=module", "--eval", tour])

    assert "You said: hello" in output
    assert "You said: one" in output and "You said: two" in output


def _readme_js_tour() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## A short tour with the JS SDK", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```js\n(.*?)```", section, flags=re.DOTALL)
    assert len(blocks) == 1, "the JS tour has one ```js block"
    return blocks[0]


def _run_or_fail(
    command: list[str], env: dict[str, str] | None = None, timeout: float = 180
) -> str:
    """Run ``command`` in tests/js; its output, or a failure that shows it."""
    result = subprocess.run(
        command,
        cwd=JS_DIR,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(command[:3])}` exited with {result.returncode}:\n{output}")
    return output
