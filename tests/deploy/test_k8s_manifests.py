"""deploy/k8s: the plain manifests (a kustomize base rendered from the chart) and their overlays,
each rendered by `kubectl kustomize` and validated against the Kubernetes versions claimed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.k8s_base import K8S, render_base, render_shapes
from tests.deploy.test_helm_chart import KUBERNETES_VERSIONS
from tests.support.k8s import kubectl, kubernetes_validate

OVERLAYS = ("production", "external-databases")


def test_the_base_is_the_chart_rendered() -> None:
    """Fails when the chart changed and the base was not written again (see k8s_base.py)."""
    rendered = render_base()
    committed = {path.name: path.read_text() for path in (K8S / "base").glob("*.yaml")}
    committed.pop("kustomization.yaml")
    assert committed == rendered


def kustomize(overlay: str, tmp_path: Path) -> list[dict[str, Any]]:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    folder = copy / "overlays" / overlay
    shutil.copy(folder / "secrets.env.example", folder / "secrets.env")
    done = kubectl("kustomize", str(folder))
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_each_overlay_renders_valid_kubernetes(overlay: str, version: str, tmp_path: Path) -> None:
    docs = kustomize(overlay, tmp_path)
    done = kubernetes_validate(yaml.safe_dump_all(docs), version)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Couldn't find schema" not in done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == len(docs)
    assert {doc["metadata"].get("namespace") for doc in docs} == {"stead"}


def test_production_runs_four_of_each_on_the_bundled_stores(tmp_path: Path) -> None:
    docs = kustomize("production", tmp_path)
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in docs}
    assert {("StatefulSet", "stead-postgres"), ("Deployment", "stead-redis")} <= names
    replicas = {
        doc["metadata"]["name"]: doc["spec"]["replicas"]
        for doc in docs
        if doc["kind"] == "Deployment"
    }
    assert replicas["stead-api"] == replicas["stead-queue"] == 4
    (secret,) = [doc for doc in docs if doc["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "stead-env"


def test_external_databases_leave_out_the_bundled_stores(tmp_path: Path) -> None:
    docs = kustomize("external-databases", tmp_path)
    components = {
        doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") for doc in docs
    }
    assert not components & {"postgres", "redis"}
    assert "stead-stores" not in {doc["metadata"]["name"] for doc in docs}


def test_the_seeds_control_plane_and_data_plane_files_are_the_chart_rendered() -> None:
    rendered = render_shapes()
    for name, text in rendered.items():
        assert (K8S / name).read_text() == text, f"write {name} again (see k8s_base.py)"


@pytest.mark.parametrize("name", ["control-plane.yaml", "data-plane.yaml"])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_seeds_files_are_valid_kubernetes(name: str, version: str) -> None:
    text = (K8S / name).read_text()
    docs = [doc for doc in yaml.safe_load_all(text) if doc]
    done = kubernetes_validate(text, version)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == len(docs)


def test_the_seeds_data_plane_servers_report_to_the_control_plane() -> None:
    docs = [doc for doc in yaml.safe_load_all((K8S / "data-plane.yaml").read_text()) if doc]
    for deployment in (doc for doc in docs if doc["kind"] == "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["DEPLOYMENT_TYPE"] == "self_hosted_data_plane"
        assert env["CONTROL_PLANE_URL"] == "http://stead.stead-control-plane.svc:1985"
        assert {"secretRef": {"name": "stead-env"}} in container["envFrom"]
    control = [doc for doc in yaml.safe_load_all((K8S / "control-plane.yaml").read_text()) if doc]
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in control}
    assert {("Deployment", "stead-control-plane"), ("StatefulSet", "stead-postgres")} <= names
