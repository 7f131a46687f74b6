"""checkov, the policy scanner, in a venv of its own (it pins much of what it needs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.install_lock import install_lock
from tests.support.servers import REPO_ROOT

VENV = REPO_ROOT / ".venvs" / "checkov"
VERSION = "3.2.500"
# The Kubernetes checks Stead's objects do not follow, each with its reason in the file.
K8S_SKIPS = REPO_ROOT / "deploy" / "checkov.yaml"


def checkov(path: Path, framework: str, config: Path | None = None) -> dict[str, Any]:
    """The summary of a scan: passed, failed, skipped, resource_count, and the failed checks."""
    binary = VENV / "bin" / "checkov"
    with install_lock(VENV):
        if not binary.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            pip = [str(VENV / "bin" / "pip"), "install", "--quiet", f"checkov=={VERSION}"]
            subprocess.run(pip, check=True)
    command = [str(binary), "-f", str(path), "--framework", framework, "--skip-download"]
    command += ["-o", "json", "--quiet"] + (["--config-file", str(config)] if config else [])
    env = {**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    if isinstance(report, list):
        (report,) = report
    failed = [
        f"{check['check_id']} {check['resource']}"
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    return {**report.get("summary", {}), "failed_checks": failed}
