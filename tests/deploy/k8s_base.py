"""deploy/k8s/base is the Helm chart rendered with deploy/k8s/chart-values.yaml, one file per
part, less the chart's Secret (kustomize's secretGenerator makes it from an env file). Write it
again after changing the chart: `.venv/bin/python -m tests.deploy.k8s_base`."""

from __future__ import annotations

from typing import Any

import yaml

from tests.support.k8s import helm
from tests.support.servers import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"
HEADER = "# Rendered from deploy/helm/stead by `python -m tests.deploy.k8s_base`; do not edit.\n"
# Which file each object goes to, by its component (or kind, for those without one).
FILES = {
    "postgres": "postgres.yaml",
    "redis": "redis.yaml",
    "api": "stead-api.yaml",
    "queue": "stead-worker.yaml",
    "NetworkPolicy": "network-policy.yaml",
    "ServiceAccount": "rbac.yaml",
    "Role": "rbac.yaml",
    "RoleBinding": "rbac.yaml",
}


def render_base() -> dict[str, str]:
    done = helm(
        "template", "stead", str(REPO_ROOT / "deploy" / "helm" / "stead"), "--namespace", "stead",
        "-f", str(K8S / "chart-values.yaml"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    files: dict[str, list[dict[str, Any]]] = {}
    for doc in yaml.safe_load_all(done.stdout):
        if not doc or doc["kind"] == "Secret":
            continue
        labels = doc["metadata"].get("labels", {})
        key = labels.get("app.kubernetes.io/component") or doc["kind"]
        files.setdefault(FILES[key], []).append(_without_helm_labels(doc))
    return {
        name: HEADER + yaml.safe_dump_all(docs, sort_keys=False) for name, docs in files.items()
    }


def _without_helm_labels(doc: Any) -> Any:
    """Labels that name Helm would be false outside it."""
    if isinstance(doc, dict):
        return {
            key: _without_helm_labels(value)
            for key, value in doc.items()
            if key not in ("helm.sh/chart", "app.kubernetes.io/managed-by", "checksum/env")
        }
    if isinstance(doc, list):
        return [_without_helm_labels(item) for item in doc]
    return doc


if __name__ == "__main__":
    for name, text in render_base().items():
        (K8S / "base" / name).write_text(text)
        print(f"wrote deploy/k8s/base/{name}")
