"""The listener's kubernetes backend up to the API server (none can run here): the objects it
would apply for a revision, rendered from Stead's chart with `helm template`, pass the same
validators as the chart, carry the deployment's image, secrets, resources and namespace, and
keep what must not change between renders. Live apply is exercised by deploy/kind/smoke.sh."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from stead.listener.backends.kubernetes import (
    DEPLOYMENT_ANNOTATION,
    REVISION_ANNOTATION,
    KubernetesBackend,
    release_name,
    rollout_complete,
    split_image,
)
from tests.deploy.test_helm_chart import CHART, CUSTOM_KINDS, KUBERNETES_VERSIONS
from tests.support.k8s import helm_binary, kubernetes_validate

SECRET_VALUE = "sk-listener-secret"
PASSWORD = "kept-password"


def deployment(name: str = "support-bot", namespace: str | None = "agents") -> dict[str, Any]:
    config = {"listener_config": {"k8s_namespace": namespace}} if namespace else {}
    return {"id": "5c1d8f6e-0d1e-4b8e-9a63-3f8f2f1f7a10", "name": name, "source_config": config}


def revision(env: dict[str, str] | None = None, image: str = "registry.example.com/team/agent:1.4"):  # type: ignore[no-untyped-def]
    return {
        "id": "01a23d00-0000-7000-8000-000000000001",
        "source": "external_docker",
        "source_revision_config": {"image_uri": image},
        "resource_spec": {
            "min_scale": 2, "max_scale": 4, "queue_min_scale": 2, "cpu": 1, "memory_mb": 2048,
        },
        "env": env if env is not None else {"OPENAI_API_KEY": SECRET_VALUE},
    }  # fmt: skip


@pytest.fixture
def backend() -> KubernetesBackend:
    return KubernetesBackend(CHART, ["default", "agents"], 60, str(helm_binary()))


def kinds(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_rendered_objects_are_valid_kubernetes(
    backend: KubernetesBackend, version: str
) -> None:
    objects = backend.render(deployment(), revision(), PASSWORD)
    core = [o for o in objects if o["kind"] not in CUSTOM_KINDS]
    done = kubernetes_validate(yaml.safe_dump_all(core), version)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == len(core)


def test_the_objects_carry_the_revision_in_the_deployments_namespace(
    backend: KubernetesBackend,
) -> None:
    objects = backend.render(deployment(), revision(), PASSWORD)
    assert {o["metadata"]["namespace"] for o in objects} == {"agents"}
    for obj in objects:
        assert obj["metadata"]["annotations"][DEPLOYMENT_ANNOTATION] == deployment()["id"]
        assert obj["metadata"]["annotations"][REVISION_ANNOTATION] == revision()["id"]
    # A deployment naming no namespace goes to the listener's first.
    unnamed = backend.render(deployment(namespace=None), revision(), PASSWORD)
    assert {o["metadata"]["namespace"] for o in unnamed} == {"default"}


def test_image_replicas_and_resources_follow_the_resource_spec(backend: KubernetesBackend) -> None:
    objects = backend.render(deployment(), revision(), PASSWORD)
    release = release_name(deployment())
    deployments = kinds(objects, "Deployment")
    api = deployments[f"{release}-api"]
    worker = deployments[f"{release}-queue"]
    (api_container,) = api["spec"]["template"]["spec"]["containers"]
    assert api_container["image"] == "registry.example.com/team/agent:1.4"
    assert api_container["resources"]["requests"] == {"cpu": "1.0", "memory": "2048Mi"}
    assert api_container["resources"]["limits"] == {"cpu": "2.0", "memory": "4096Mi"}
    assert worker["spec"]["replicas"] == 2
    (hpa,) = kinds(objects, "HorizontalPodAutoscaler").values()
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    assert len(kinds(objects, "PodDisruptionBudget")) == 2


def test_secrets_go_into_a_secret_never_into_a_pod_spec(backend: KubernetesBackend) -> None:
    objects = backend.render(deployment(), revision(), PASSWORD)
    (secret,) = [
        s for s in kinds(objects, "Secret").values() if "OPENAI_API_KEY" in s.get("stringData", {})
    ]
    assert secret["stringData"]["OPENAI_API_KEY"] == SECRET_VALUE
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            assert SECRET_VALUE not in yaml.safe_dump(obj)


def test_the_database_password_is_the_one_given(backend: KubernetesBackend) -> None:
    """Helm's own fallback (a random one, where no cluster is looked up) would change it at every
    render; the backend passes the one its PostgreSQL was created with."""
    uri = _database_uri(backend.render(deployment(), revision(), PASSWORD))
    assert uri.startswith(f"postgresql://stead:{PASSWORD}@")


def test_a_deployments_own_postgres_and_redis_give_way_to_custom_ones(
    backend: KubernetesBackend,
) -> None:
    env = {"POSTGRES_URI_CUSTOM": "postgresql://u:p@db.internal:5432/agent",
           "REDIS_URI_CUSTOM": "redis://cache.internal:6379/0"}  # fmt: skip
    objects = backend.render(deployment(), revision(env), PASSWORD)
    assert kinds(objects, "StatefulSet") == {}
    assert _database_uri(objects) == env["POSTGRES_URI_CUSTOM"]
    assert all(not name.endswith("-redis") for name in kinds(objects, "Deployment"))


def test_an_image_by_digest_renders_as_a_digest(backend: KubernetesBackend) -> None:
    image = "registry.example.com/agent@sha256:" + "a" * 64
    objects = backend.render(deployment(), revision(image=image), PASSWORD)
    release = release_name(deployment())
    api = kinds(objects, "Deployment")[f"{release}-api"]
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert split_image("localhost:5000/agent") == ("localhost:5000/agent", "latest")


def test_release_names_are_distinct_dns_labels() -> None:
    first = release_name(deployment("My Agent!"))
    second = release_name({**deployment("My Agent!"), "id": "77" + deployment()["id"][2:]})
    assert first != second
    assert first == "stead-my-agent-5c1d8f6e"


def test_a_rollout_is_complete_when_every_replica_is_updated_and_available() -> None:
    body = {
        "metadata": {"generation": 3},
        "spec": {"replicas": 2},
        "status": {"observed_generation": 3, "updated_replicas": 2, "available_replicas": 2,
                   "replicas": 2},
    }  # fmt: skip
    assert rollout_complete(body)
    old_pods_left = {**body, "status": {**body["status"], "replicas": 3}}
    assert not rollout_complete(old_pods_left)
    not_observed = {**body, "status": {**body["status"], "observed_generation": 2}}
    assert not rollout_complete(not_observed)


def _database_uri(objects: list[dict[str, Any]]) -> str:
    for secret in kinds(objects, "Secret").values():
        data = secret.get("stringData", {})
        if "DATABASE_URI" in data:
            return str(data["DATABASE_URI"])
        if "DATABASE_URI" in secret.get("data", {}):
            return base64.b64decode(secret["data"]["DATABASE_URI"]).decode()
    raise AssertionError("no DATABASE_URI in any Secret")
