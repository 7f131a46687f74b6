"""Stead's Helm chart rendered offline (no Kubernetes API server can run here): `helm lint
--strict`, a matrix of values files each validated against the Kubernetes versions the chart
supports, and assertions over the rendered objects that users and their clusters rely on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.k8s import helm, kubernetes_validate
from tests.support.servers import REPO_ROOT

CHART = REPO_ROOT / "deploy" / "helm" / "stead"
VALUES = sorted((Path(__file__).parent / "helm-values").glob("*.yaml"))
MATRIX = [None, *VALUES]
# The oldest and the newest Kubernetes the chart claims (Chart.yaml: kubeVersion >=1.25).
KUBERNETES_VERSIONS = ("1.25", "1.33")
# Custom resources: no Kubernetes schema knows them; their fields are asserted below instead.
CUSTOM_KINDS = {"ScaledObject", "ServiceMonitor", "HTTPRoute"}
STEAD_COMPONENTS = ("api", "queue")


def render(values: Path | None = None, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "release", str(CHART), "--namespace", "agents"]
    if values is not None:
        args += ["-f", str(values)]
    for option in sets:
        args += ["--set", option]
    done = helm(*args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def render_error(*sets: str) -> str:
    args = ["template", "release", str(CHART)]
    for option in sets:
        args += ["--set", option]
    done = helm(*args)
    assert done.returncode != 0, "the render should have failed"
    return done.stderr


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def stead_pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The pod templates of the API and worker Deployments, by component."""
    return {
        doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]: doc["spec"][
            "template"
        ]["spec"]
        for doc in docs
        if doc["kind"] == "Deployment"
        and doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
        in STEAD_COMPONENTS
    }


def test_helm_lint_strict() -> None:
    done = helm("lint", "--strict", str(CHART))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("values", MATRIX, ids=lambda v: v.stem if v else "defaults")
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_render_is_valid_kubernetes(values: Path | None, version: str) -> None:
    docs = render(values)
    core = [doc for doc in docs if doc["kind"] not in CUSTOM_KINDS]
    done = kubernetes_validate(yaml.safe_dump_all(core), version)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Couldn't find schema" not in done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == len(core)


@pytest.mark.parametrize("values", MATRIX, ids=lambda v: v.stem if v else "defaults")
def test_every_container_is_bounded_probed_and_locked_down(values: Path | None) -> None:
    docs = render(values)
    for doc in docs:
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        # Only the listener calls the Kubernetes API.
        is_listener = doc["metadata"]["name"].endswith("-listener")
        assert pod["automountServiceAccountToken"] is is_listener
        for container in pod.get("initContainers", []) + pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True, container["name"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"requests", "limits"} <= container["resources"].keys()
        for container in pod["containers"]:
            assert "livenessProbe" in container and "readinessProbe" in container, container["name"]


def test_probes_and_commands_of_the_stead_processes() -> None:
    pods = stead_pods(render())
    api = pods["api"]["containers"][0]
    assert api["args"] == ["run", "--host", "0.0.0.0", "--port", "8000"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/ok"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert _env(api)["N_JOBS_PER_WORKER"] == "0"  # the workers execute the runs
    worker = pods["queue"]["containers"][0]
    assert worker["args"][0] == "worker"
    assert worker["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "probe"}
    # Longer than the runs' shutdown grace: Stead hands them back before it is killed.
    grace = int(_env(api)["BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS"])
    assert pods["api"]["terminationGracePeriodSeconds"] > grace


def test_the_schema_is_migrated_before_any_stead_process_starts() -> None:
    for pod in stead_pods(render()).values():
        (init,) = pod["initContainers"]
        assert init["args"] == ["migrate"]
        assert _env(init).keys() >= {"DATABASE_URI", "REDIS_URI"}


def test_no_secret_value_appears_in_a_pod_spec() -> None:
    docs = render(VALUES[[v.stem for v in VALUES].index("seed")], "postgres.password=s3cret-pw")
    secret = next(iter(by_kind(docs, "Secret").values()))
    values = [v for v in secret["stringData"].values() if len(v) > 3]
    assert "your_langsmith_key" in values and "s3cret-pw" in values
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            text = yaml.safe_dump(doc)
            assert not [value for value in values if value in text], doc["metadata"]["name"]


def test_the_env_names_are_the_ones_stead_reads() -> None:
    """Every variable the chart sets appears as a string in Stead's code."""
    source = "\n".join(path.read_text() for path in (REPO_ROOT / "src" / "stead").rglob("*.py"))
    for pod in stead_pods(render()).values():
        for container in pod["initContainers"] + pod["containers"]:
            for name in _env(container):
                assert f'"{name}"' in source, name


def test_external_stores_come_from_existing_secrets() -> None:
    docs = render(VALUES[[v.stem for v in VALUES].index("external-secrets")])
    assert not by_kind(docs, "StatefulSet") and "release-stead-redis" not in by_kind(
        docs, "Deployment"
    )
    api = stead_pods(docs)["api"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in api["env"] if "valueFrom" in e}
    assert refs["DATABASE_URI"] == {"name": "stead-database", "key": "uri"}
    assert refs["REDIS_URI"] == {"name": "stead-redis", "key": "uri"}


def test_the_network_policy_admits_the_ingress_controller_and_reaches_only_the_stores() -> None:
    policies = by_kind(render(), "NetworkPolicy")
    server = policies["release-stead"]["spec"]
    (rule,) = server["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    namespace = rule["from"][0]["namespaceSelector"]["matchLabels"]
    assert namespace == {"kubernetes.io/metadata.name": "ingress-nginx"}
    ports = {(p["protocol"], p["port"]) for egress in server["egress"] for p in egress["ports"]}
    assert ports == {("TCP", 5432), ("TCP", 6379), ("UDP", 53), ("TCP", 53), ("TCP", 443)}
    components = server["podSelector"]["matchExpressions"][0]["values"]
    assert components == ["api", "queue"]
    assert "release-stead-stores" in policies
    assert not by_kind(
        render(VALUES[[v.stem for v in VALUES].index("no-network-policy")]), "NetworkPolicy"
    )


def test_keda_scales_workers_on_the_queue_with_a_nonzero_target() -> None:
    docs = render(VALUES[[v.stem for v in VALUES].index("keda")])
    (scaled,) = by_kind(docs, "ScaledObject").values()
    assert scaled["spec"]["scaleTargetRef"]["name"] == "release-stead-queue"
    (trigger,) = scaled["spec"]["triggers"]
    assert "status = 'pending'" in trigger["metadata"]["query"]
    assert int(trigger["metadata"]["targetQueryValue"]) == 5
    assert "replicas" not in by_kind(docs, "Deployment")["release-stead-queue"]["spec"]
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_hpa_and_gateway_renders() -> None:
    hpas = by_kind(render(VALUES[[v.stem for v in VALUES].index("hpa")]), "HorizontalPodAutoscaler")
    assert set(hpas) == {"release-stead-api", "release-stead-queue"}
    (route,) = by_kind(
        render(VALUES[[v.stem for v in VALUES].index("gateway")]), "HTTPRoute"
    ).values()
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "release-stead", "port": 8000}]


def test_the_seed_values_install_with_its_ingress_and_storage() -> None:
    docs = render(VALUES[[v.stem for v in VALUES].index("seed")])
    (ingress,) = by_kind(docs, "Ingress").values()
    assert ingress["spec"]["tls"] == [
        {"secretName": "langgraph-tls", "hosts": ["langgraph.yourdomain.com"]}
    ]
    assert (
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    )
    (postgres,) = by_kind(docs, "StatefulSet").values()
    claim = postgres["spec"]["volumeClaimTemplates"][0]["spec"]
    assert (
        claim["storageClassName"] == "gp2" and claim["resources"]["requests"]["storage"] == "20Gi"
    )


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ("ingress.enabled=true", "ingress.hosts[0].host=a.example", "httpRoute.enabled=true"),
            "set ingress.enabled or httpRoute.enabled, not both",
        ),
        (("ingress.enabled=true",), "ingress.enabled: list at least one host in ingress.hosts"),
        (("postgres.enabled=false",), "set postgres.external.uri or postgres.external.existing"),
        (("redis.enabled=false",), "set redis.external.uri or redis.external.existingSecret"),
        (("httpRoute.enabled=true",), "name the Gateway in httpRoute.parentRefs"),
        (("bogus=1",), "Additional property bogus is not allowed"),
        (("dataPlane.replicas=two",), "dataPlane.replicas: Invalid type"),
        (("queue.autoscaling.type=cron",), "queue.autoscaling.type"),
        (("backup.enabled=true", "backup.keep=0"), "backup.keep: Must be greater than or equal"),
    ],
)  # fmt: skip
def test_bad_values_fail_the_render_with_a_clear_message(
    sets: tuple[str, ...], message: str
) -> None:
    assert message in render_error(*sets)


def _env(container: dict[str, Any]) -> dict[str, str | None]:
    return {entry["name"]: entry.get("value") for entry in container.get("env", [])}


def test_the_chart_declares_the_kubernetes_versions_it_is_validated_against() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    (minimum,) = re.findall(r">=(\d+\.\d+)", chart["kubeVersion"])
    assert minimum == KUBERNETES_VERSIONS[0]


def test_scheduled_backups_write_to_their_own_volume_and_keep_the_newest() -> None:
    assert not by_kind(render(), "CronJob")
    docs = render(Path(__file__).parent / "helm-values" / "backup.yaml")
    cron = by_kind(docs, "CronJob")["release-stead-backup"]
    assert cron["spec"]["schedule"] == "30 2 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["backup", "--output-dir", "/backups", "--keep", "14"]
    database = next(env for env in container["env"] if env["name"] == "DATABASE_URI")
    assert database["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_URI"
    assert {"name": "backups", "mountPath": "/backups"} in container["volumeMounts"]
    claim = next(v for v in pod["volumes"] if v["name"] == "backups")["persistentVolumeClaim"]
    volume = by_kind(docs, "PersistentVolumeClaim")[claim["claimName"]]
    assert volume["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    policies = by_kind(docs, "NetworkPolicy")
    egress = policies["release-stead-backup"]["spec"]["egress"]
    assert [rule["ports"] for rule in egress] == [
        [{"protocol": "TCP", "port": 5432}],
        [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    ]
    assert "ingress" not in policies["release-stead-backup"]["spec"]
    admitted = policies["release-stead-stores"]["spec"]["ingress"][0]["from"][0]["podSelector"]
    assert "backup" in admitted["matchExpressions"][0]["values"]
    own = render(None, "backup.enabled=true", "backup.persistence.existingClaim=archives")
    pod = by_kind(own, "CronJob")["release-stead-backup"]["spec"]["jobTemplate"]["spec"]
    volumes = pod["template"]["spec"]["volumes"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "archives"}} in volumes
    assert "release-stead-backups" not in by_kind(own, "PersistentVolumeClaim")


def test_scheduled_backups_can_go_to_an_s3_bucket_instead() -> None:
    docs = render(Path(__file__).parent / "helm-values" / "backup-s3.yaml")
    pod = by_kind(docs, "CronJob")["release-stead-backup"]["spec"]["jobTemplate"]["spec"]
    spec = pod["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"] == [
        "backup",
        "--output-dir",
        "s3://stead-backups/production",
        "--keep",
        "30",
    ]
    assert {"secretRef": {"name": "stead-backup-s3"}} in container["envFrom"]
    assert {"name": "AWS_REGION", "value": "eu-west-1"} in container["env"]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert spec["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "20Gi"}}]
    assert "release-stead-backups" not in by_kind(docs, "PersistentVolumeClaim")
    egress = by_kind(docs, "NetworkPolicy")["release-stead-backup"]["spec"]["egress"]
    assert egress[-1] == {"ports": [{"protocol": "TCP", "port": 9000}]}
    refused = render_error("backup.enabled=true", "backup.s3.url=https://bucket")
    assert "backup.s3.url: Does not match pattern" in refused
