"""AWS tools for offline checks of deploy/ecs, in a venv of their own (cfn-lint pins much of
what it needs): cfn-lint, and botocore's model of ECS requests (ecs_shapes.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.install_lock import install_lock
from tests.support.servers import REPO_ROOT

VENV = REPO_ROOT / ".venvs" / "aws-tools"
PACKAGES = ("cfn-lint==1.58.0", "botocore==1.44.8")


def _venv_bin(name: str) -> Path:
    binary = VENV / "bin" / name
    with install_lock(VENV):
        if not binary.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            pip = [str(VENV / "bin" / "pip"), "install", "--quiet", *PACKAGES]
            subprocess.run(pip, check=True)
    return binary


def cfn_lint(template: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_venv_bin("cfn-lint")), str(template)], capture_output=True, text=True
    )


def ecs_request_problems(operation: str, body: Path) -> subprocess.CompletedProcess[str]:
    script = Path(__file__).with_name("ecs_shapes.py")
    return subprocess.run(
        [str(_venv_bin("python")), str(script), operation, str(body)],
        capture_output=True,
        text=True,
    )
