"""checkov on everything deploy/ ships: the chart's renders, the plain manifests, the Dockerfiles
and the CloudFormation template. No check may fail; a skip needs its reason beside it
(deploy/checkov.yaml for Kubernetes, `checkov:skip` comments in the Dockerfiles, Metadata in the
template)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.deploy.test_helm_chart import MATRIX, render
from tests.deploy.test_k8s_manifests import OVERLAYS, kustomize
from tests.support.checkov import K8S_SKIPS, checkov
from tests.support.servers import REPO_ROOT

DOCKERFILES = [
    REPO_ROOT / "deploy" / "docker" / "Dockerfile",
    REPO_ROOT / "deploy" / "docker" / "listener.Dockerfile",
    *(REPO_ROOT / "tests").glob("**/Dockerfile"),
]


def _scan_k8s(docs: list[dict[str, object]], tmp_path: Path, allowed: str = "") -> None:
    path = tmp_path / "objects.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    summary = checkov(path, "kubernetes", K8S_SKIPS)
    failed = [check for check in summary["failed_checks"] if not check.startswith(f"{allowed} ")]
    assert failed == []
    # checkov scans nothing, silently, when it cannot read its input.
    assert summary["resource_count"] >= len(docs) - 1 and summary["passed"] > 0


@pytest.mark.parametrize("values", MATRIX, ids=lambda v: v.stem if v else "defaults")
def test_chart_renders_pass(values: Path | None, tmp_path: Path) -> None:
    # With networkPolicy.enabled=false the user chose pods without a NetworkPolicy (CKV2_K8S_6);
    # the listener calls the Kubernetes API, so its token is mounted (CKV_K8S_38).
    allowed = {"no-network-policy": "CKV2_K8S_6", "data-plane": "CKV_K8S_38"}.get(
        values.stem if values is not None else "", ""
    )
    _scan_k8s(render(values), tmp_path, allowed)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_plain_manifests_pass(overlay: str, tmp_path: Path) -> None:
    _scan_k8s(kustomize(overlay, tmp_path), tmp_path)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_dockerfiles_pass(dockerfile: Path) -> None:
    summary = checkov(dockerfile, "dockerfile")
    assert summary["failed_checks"] == [] and summary["passed"] > 0


def test_the_cloudformation_template_passes() -> None:
    summary = checkov(REPO_ROOT / "deploy" / "ecs" / "stead.cfn.yaml", "cloudformation")
    assert summary["failed_checks"] == [] and summary["passed"] > 0
    assert summary["resource_count"] > 20
