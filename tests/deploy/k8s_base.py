"""deploy/k8s/base is the Helm chart rendered with deploy/k8s/chart-values.yaml, one file per
part, less the chart's Secret (kustomize's secretGenerator makes it from an env file); the seed's
control-plane.yaml and data-plane.yaml are the chart rendered with their values files, less their
Secrets too (you create them). Write them again after changing the chart:
`.venv/bin/python -m tests.deploy.k8s_base`."""

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


# The seed's single-file shapes: file, the values it is rendered with, its namespace, and the
# Secrets to create before applying it.
SHAPES = {
    "control-plane.yaml": (
        "control-plane-values.yaml",
        "stead-control-plane",
        "# Create first, in namespace stead-control-plane: Secret stead-env (POSTGRES_PASSWORD,\n"
        "# and DATABASE_URI=postgresql://stead:<password>@stead-postgres:5432/stead) and\n"
        "# Secret stead-control-plane (STEAD_ENCRYPTION_KEY, a Fernet key).\n",
    ),
    "data-plane.yaml": (
        "data-plane-values.yaml",
        "stead",
        "# Servers that report to the control plane themselves. Create first, in namespace stead:\n"
        "# Secret stead-env (DATABASE_URI, REDIS_URI, and LICENSE_KEY, an enrollment key from\n"
        "# `stead license issue --subject <workspace> --scope data-plane`).\n",
    ),
}


def render_base() -> dict[str, str]:
    files: dict[str, list[dict[str, Any]]] = {}
    for doc in _render("chart-values.yaml", "stead"):
        labels = doc["metadata"].get("labels", {})
        key = labels.get("app.kubernetes.io/component") or doc["kind"]
        files.setdefault(FILES[key], []).append(doc)
    return {
        name: HEADER + yaml.safe_dump_all(docs, sort_keys=False) for name, docs in files.items()
    }


def render_shapes() -> dict[str, str]:
    return {
        name: HEADER + secrets + yaml.safe_dump_all(_render(values, namespace), sort_keys=False)
        for name, (values, namespace, secrets) in SHAPES.items()
    }


def _render(values: str, namespace: str) -> list[dict[str, Any]]:
    """The chart's objects less its Secrets, without the labels that name Helm."""
    done = helm(
        "template", "stead", str(REPO_ROOT / "deploy" / "helm" / "stead"),
        "--namespace", namespace, "-f", str(K8S / values),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    docs = [doc for doc in yaml.safe_load_all(done.stdout) if doc and doc["kind"] != "Secret"]
    return [_without_helm_labels(doc) for doc in docs]


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
    for name, text in render_shapes().items():
        (K8S / name).write_text(text)
        print(f"wrote deploy/k8s/{name}")
