"""Inside a private network namespace (see sdk_suite.run_isolated): start the session's runtime
and `stead run` on the suite's graphs at 127.0.0.1:2024, run the suite, leave its report and the
server log in the folder given as the only argument.

Usage: unshare --net -- python -m tests.support.sdk_suite_netns FOLDER
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

from tests.support.postgres import session_runtime_env
from tests.support.sdk_suite import (
    JUNIT_NAME,
    SERVER_LOG_NAME,
    SUITE_TIMEOUT,
    run_suite,
    suite_dir,
)
from tests.support.servers import stead_server

# Where the suite's RemoteGraph tests look, whatever LANGGRAPH_INTEGRATION_URL says.
SUITE_PORT = 2024


def main(folder: Path) -> None:
    # A new network namespace has only a loopback interface, and it is down.
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    config = suite_dir() / "integration" / "langgraph.json"
    with ExitStack() as stack:
        env = {"BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS": "2", **session_runtime_env(stack, config)}
        server = stack.enter_context(stead_server(config, env=env, port=SUITE_PORT, timeout=120))
        try:
            completed = run_suite(server.url, folder / JUNIT_NAME, SUITE_TIMEOUT - 60)
            print(completed.stdout)
        finally:
            shutil.copy(server.log_path, folder / SERVER_LOG_NAME)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
