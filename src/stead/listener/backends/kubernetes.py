"""The kubernetes backend: each external_docker deployment becomes the objects of Stead's Helm
chart (deploy/helm/stead), rendered with `helm template` from values the revision implies, and
applied with server-side apply through the official `kubernetes` client in the namespace its
`listener_config.k8s_namespace` names. DEPLOYED waits for the API Deployment's rollout.

A failed rollout leaves the previous ReplicaSet's pods serving (the chart rolls with
maxUnavailable 0); the reconciler then applies the active revision again. Everything here up to
the API server is tested offline; applying to a live cluster is exercised by deploy/kind/smoke.sh
alone."""

from __future__ import annotations

import base64
import json
import re
import secrets
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from stead.listener.backends.base import LogLine, RolloutFailed, Running

BUILD_FAILED = "BUILD_FAILED"
DEPLOY_FAILED = "DEPLOY_FAILED"
FIELD_MANAGER = "stead-listener"
DEPLOYMENT_ANNOTATION = "stead.dev/deployment"
REVISION_ANNOTATION = "stead.dev/revision"
_ALIASES = {"POSTGRES_URI_CUSTOM": "postgres", "REDIS_URI_CUSTOM": "redis"}


class KubernetesBackend:
    name = "kubernetes"

    def __init__(
        self,
        chart: Path,
        namespaces: list[str],
        deploy_timeout: float,
        helm: str = "helm",
    ) -> None:
        """`namespaces`: the ones it watches; a deployment naming none goes to the first."""
        self._chart = chart
        self._namespaces = namespaces
        self._deploy_timeout = deploy_timeout
        self._helm = helm
        self._api: Any = None

    def needs_build(self, revision: dict[str, Any]) -> bool:
        return revision["source"] != "external_docker"

    def build(self, deployment: dict[str, Any], revision: dict[str, Any], log: LogLine) -> None:
        raise RolloutFailed(
            BUILD_FAILED,
            f"the kubernetes backend runs images (external_docker); a {revision['source']} "
            "revision needs a listener with --backend process",
        )

    def render(
        self, deployment: dict[str, Any], revision: dict[str, Any], postgres_password: str
    ) -> list[dict[str, Any]]:
        """The objects a revision runs as, each marked with its deployment and revision."""
        namespace = self.namespace_of(deployment)
        values = chart_values(deployment, revision, postgres_password)
        with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
            json.dump(values, file)
            file.flush()
            done = subprocess.run(
                [
                    *(self._helm, "template", release_name(deployment), str(self._chart)),
                    *("--namespace", namespace, "--values", file.name),
                ],
                capture_output=True,
                text=True,
                timeout=120,
            )
        if done.returncode != 0:
            raise RolloutFailed(DEPLOY_FAILED, f"helm template: {done.stderr.strip()[-500:]}")
        objects = [obj for obj in yaml.safe_load_all(done.stdout) if obj]
        for obj in objects:
            annotations = obj["metadata"].setdefault("annotations", {})
            annotations[DEPLOYMENT_ANNOTATION] = deployment["id"]
            annotations[REVISION_ANNOTATION] = revision["id"]
        return objects

    def deploy(self, deployment: dict[str, Any], revision: dict[str, Any], log: LogLine) -> str:
        objects = self.render(deployment, revision, self._postgres_password(deployment))
        for obj in objects:
            self._apply(obj)
            log(f"applied {obj['kind']}/{obj['metadata']['name']}", "INFO")
        (api,) = [o for o in objects if o["kind"] == "Deployment" and _is_api(o)]
        namespace = self.namespace_of(deployment)
        failure = self._wait_for_rollout(api["metadata"]["name"], namespace)
        if failure is not None:
            raise RolloutFailed(DEPLOY_FAILED, failure)
        return f"http://{api['metadata']['name']}.{namespace}.svc:8000"

    def current_revision(self, deployment_id: str) -> str | None:
        found = self._api_deployments(deployment_id)
        return found[0]["revision"] if found else None

    def supervise(self) -> None:
        """The kubelet restarts crashed containers; nothing to do."""

    def remove(self, deployment_id: str) -> None:
        from kubernetes.client import ApiException

        for kind, api_version in _REMOVED_KINDS:
            resource = self._client().resources.get(api_version=api_version, kind=kind)
            for namespace in self._namespaces:
                for item in resource.get(namespace=namespace).items:
                    annotations = item.metadata.annotations or {}
                    if annotations.get(DEPLOYMENT_ANNOTATION) != deployment_id:
                        continue
                    try:
                        resource.delete(name=item.metadata.name, namespace=namespace)
                    except ApiException as exc:
                        if exc.status != 404:
                            raise

    def running(self) -> list[Running]:
        return [
            Running(d["deployment"], d["revision"], d["url"], d["ready"])
            for d in self._api_deployments(None)
        ]

    def namespace_of(self, deployment: dict[str, Any]) -> str:
        listener_config = deployment["source_config"].get("listener_config") or {}
        return str(listener_config.get("k8s_namespace") or self._namespaces[0])

    def _postgres_password(self, deployment: dict[str, Any]) -> str:
        """The password its PostgreSQL was created with (in the chart's Secret), else a new one:
        every render must give the same."""
        from kubernetes.client import ApiException

        secret = self._client().resources.get(api_version="v1", kind="Secret")
        name = f"{release_name(deployment)}-env"
        try:
            found = secret.get(name=name, namespace=self.namespace_of(deployment))
        except ApiException as exc:
            if exc.status != 404:
                raise
            return secrets.token_urlsafe(24)
        encoded = (found.to_dict().get("data") or {}).get("POSTGRES_PASSWORD")
        return base64.b64decode(encoded).decode() if encoded else secrets.token_urlsafe(24)

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import config, dynamic
            from kubernetes.client import api_client

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api = dynamic.DynamicClient(api_client.ApiClient())
        return self._api

    def _apply(self, obj: dict[str, Any]) -> None:
        resource = self._client().resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        resource.server_side_apply(
            body=obj,
            name=obj["metadata"]["name"],
            namespace=obj["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )

    def _wait_for_rollout(self, name: str, namespace: str) -> str | None:
        resource = self._client().resources.get(api_version="apps/v1", kind="Deployment")
        deadline = time.monotonic() + self._deploy_timeout
        while time.monotonic() < deadline:
            found = resource.get(name=name, namespace=namespace)
            if rollout_complete(found.to_dict()):
                return None
            time.sleep(2)
        return f"Deployment {name} did not finish rolling out within {self._deploy_timeout:.0f} s"

    def _api_deployments(self, deployment_id: str | None) -> list[dict[str, Any]]:
        resource = self._client().resources.get(api_version="apps/v1", kind="Deployment")
        found = []
        for namespace in self._namespaces:
            for item in resource.get(namespace=namespace).items:
                body = item.to_dict()
                annotations = body["metadata"].get("annotations") or {}
                owner = annotations.get(DEPLOYMENT_ANNOTATION)
                if owner is None or not _is_api(body):
                    continue
                if deployment_id is not None and owner != deployment_id:
                    continue
                found.append(
                    {
                        "deployment": owner,
                        "revision": annotations.get(REVISION_ANNOTATION),
                        "url": f"http://{body['metadata']['name']}.{namespace}.svc:8000",
                        "ready": rollout_complete(body),
                    }
                )
        return found


# What a deployment's removal deletes (its PVCs stay with the cluster's retention policy).
_REMOVED_KINDS = (
    ("Deployment", "apps/v1"),
    ("StatefulSet", "apps/v1"),
    ("Service", "v1"),
    ("Secret", "v1"),
    ("ServiceAccount", "v1"),
    ("HorizontalPodAutoscaler", "autoscaling/v2"),
    ("PodDisruptionBudget", "policy/v1"),
    ("NetworkPolicy", "networking.k8s.io/v1"),
)


def _is_api(obj: dict[str, Any]) -> bool:
    """The chart's API Deployment (named after its Service, <fullname>-api)."""
    return str(obj["metadata"]["name"]).endswith("-api")


def release_name(deployment: dict[str, Any]) -> str:
    """`stead-<name>-<id>`: unique, a valid DNS label, and short enough for the chart's suffixes."""
    slug = re.sub(r"[^a-z0-9-]+", "-", deployment["name"].lower()).strip("-")[:20].strip("-")
    return f"stead-{slug}-{deployment['id'][:8]}" if slug else f"stead-{deployment['id'][:8]}"


def chart_values(
    deployment: dict[str, Any], revision: dict[str, Any], postgres_password: str
) -> dict[str, Any]:
    """The chart's values for one revision: its image, its secrets, its resource spec; its own
    PostgreSQL and Redis unless its secrets name external ones (POSTGRES_URI_CUSTOM, ...)."""
    spec = revision.get("resource_spec") or {}
    env = {k: v for k, v in revision["env"].items() if k not in _ALIASES}
    repository, tag = split_image(revision["source_revision_config"]["image_uri"])
    api_min = int(spec.get("min_scale") or 1)
    api_max = int(spec.get("max_scale") or api_min)
    workers = int(spec.get("queue_min_scale") or 0)
    values: dict[str, Any] = {
        "global": {"deployment_type": "standalone"},
        "dataPlane": {
            "image": {"repository": repository, "tag": tag},
            "replicas": api_min,
            "resources": _resources(spec.get("cpu"), spec.get("memory_mb")),
            "env": env,
        },
        "apiServer": {
            "autoscaling": {
                "enabled": api_max > api_min,
                "minReplicas": api_min,
                "maxReplicas": api_max,
            },
            "pdb": {"enabled": api_min > 1},
        },
        "queue": {
            "enabled": workers > 0,
            "replicas": max(workers, 1),
            "resources": _resources(
                spec.get("queue_cpu") or spec.get("cpu"),
                spec.get("queue_memory_mb") or spec.get("memory_mb"),
            ),
            "pdb": {"enabled": workers > 1},
        },
        "postgres": {"password": postgres_password},
    }
    for secret, store in _ALIASES.items():
        uri = revision["env"].get(secret)
        if uri:
            values[store] = {**values.get(store, {}), "enabled": False, "external": {"uri": uri}}
    return values


def split_image(image_uri: str) -> tuple[str, str]:
    """`registry/name:tag` (or `@sha256:...`) into the chart's repository and tag."""
    if "@" in image_uri:
        repository, digest = image_uri.split("@", 1)
        return repository, f"@{digest}"
    name, _, tag = image_uri.rpartition(":")
    if not name or "/" in tag:
        return image_uri, "latest"
    return name, tag


def rollout_complete(body: dict[str, Any]) -> bool:
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    wanted = spec.get("replicas") or 1
    return bool(
        (status.get("observed_generation") or 0) >= (body["metadata"].get("generation") or 0)
        and (status.get("updated_replicas") or 0) >= wanted
        and (status.get("available_replicas") or 0) >= wanted
        and (status.get("replicas") or 0) == (status.get("updated_replicas") or 0)
    )


def _resources(cpu: float | None, memory_mb: int | None) -> dict[str, Any]:
    """Requests from the resource spec; limits twice them, as the official API's defaults."""
    cpu = float(cpu or 0.5)
    memory_mb = int(memory_mb or 1024)
    return {
        "requests": {"cpu": f"{round(cpu, 1)}", "memory": f"{memory_mb}Mi"},
        "limits": {"cpu": f"{round(cpu * 2, 1)}", "memory": f"{memory_mb * 2}Mi"},
    }
