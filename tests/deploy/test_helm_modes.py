"""The chart's three `global.deployment_type` modes: a listener with a Role in each namespace it
watches and nothing cluster-wide; the control plane on the chart's PostgreSQL; and the seed's
self_hosted_data_plane servers, which report to a control plane themselves."""

from __future__ import annotations

from typing import Any

from tests.deploy.test_helm_chart import VALUES, by_kind, render, render_error

DATA_PLANE = VALUES[[v.stem for v in VALUES].index("data-plane")]
CONTROL_PLANE = VALUES[[v.stem for v in VALUES].index("control-plane")]
SEED = VALUES[[v.stem for v in VALUES].index("seed")]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_a_listener_release_is_the_listener_alone_with_namespaced_rights() -> None:
    docs = render(DATA_PLANE)
    kinds = {d["kind"] for d in docs}
    assert kinds == {"ServiceAccount", "Role", "RoleBinding", "Deployment", "NetworkPolicy"}
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == [
        "agents",
        "agents-staging",
    ]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert len(bindings) == 2
    for binding in bindings:
        (subject,) = binding["subjects"]
        assert (subject["kind"], subject["namespace"]) == ("ServiceAccount", "agents")
    (listener,) = by_kind(docs, "Deployment").values()
    assert listener["spec"]["replicas"] == 1
    (container,) = listener["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["listener", "--backend", "kubernetes", "--data-dir", "/data"]
    env = env_of(container)
    assert env["CONTROL_PLANE_URL"] == "https://deployments.example.com"
    assert env["LISTENER_ID"] == "0b6f9d1e-4c2a-4d7e-9b1a-2f3c4d5e6f70"
    assert env["STEAD_K8S_NAMESPACES"] == "agents,agents-staging"
    assert env["LICENSE_KEY"] == {
        "secretKeyRef": {"name": "stead-enrollment", "key": "LICENSE_KEY"}
    }


def test_a_listener_key_given_inline_goes_into_a_secret() -> None:
    docs = render(DATA_PLANE, "listener.existingSecret=", "listener.licenseKey=eyJ.key")
    (secret,) = by_kind(docs, "Secret").values()
    assert secret["stringData"] == {"LICENSE_KEY": "eyJ.key"}
    (listener,) = by_kind(docs, "Deployment").values()
    assert "eyJ.key" not in str(listener)


def test_a_control_plane_release_runs_on_the_charts_postgres() -> None:
    docs = render(CONTROL_PLANE)
    deployments = by_kind(docs, "Deployment")
    assert list(deployments) == ["release-stead-control-plane"]
    assert list(by_kind(docs, "StatefulSet")) == ["release-stead-postgres"]
    (container,) = deployments["release-stead-control-plane"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["args"][:1] == ["control-plane"]
    env = env_of(container)
    assert env["CONTROL_PLANE_DATABASE_URI"]["secretKeyRef"]["key"] == "DATABASE_URI"
    assert env["STEAD_ENCRYPTION_KEY"]["secretKeyRef"]["name"] == "stead-control-plane-keys"
    service = by_kind(docs, "Service")["release-stead"]
    assert service["spec"]["ports"][0]["port"] == 1985
    (ingress,) = by_kind(docs, "Ingress").values()
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "release-stead", "port": {"name": "http"}}
    (secret,) = [s for s in by_kind(docs, "Secret").values() if "DATABASE_URI" in s["stringData"]]
    assert "REDIS_URI" not in secret["stringData"]


def test_the_seed_data_plane_servers_report_to_a_control_plane_when_it_is_named() -> None:
    docs = render(SEED, "global.control_plane_url=https://deployments.example.com")
    api = by_kind(docs, "Deployment")["release-stead-api"]
    env = env_of(api["spec"]["template"]["spec"]["containers"][0])
    assert env["DEPLOYMENT_TYPE"] == "self_hosted_data_plane"
    assert env["CONTROL_PLANE_URL"] == "https://deployments.example.com"
    (secret,) = [s for s in by_kind(docs, "Secret").values() if "DATABASE_URI" in s["stringData"]]
    assert secret["stringData"]["LICENSE_KEY"] == "your_license_key"
    # Without a control plane they run standalone, as before.
    plain = by_kind(render(SEED), "Deployment")["release-stead-api"]
    assert env_of(plain["spec"]["template"]["spec"]["containers"][0])["DEPLOYMENT_TYPE"] == (
        "standalone"
    )


def test_modes_missing_their_settings_fail_with_a_clear_message() -> None:
    assert "set controlPlane.encryptionKey or controlPlane.existingSecret" in render_error(
        "global.deployment_type=self_hosted_control_plane"
    )
    assert "set listener.controlPlaneUrl too" in render_error(
        "global.deployment_type=self_hosted_data_plane", "listener.listenerId=abc",
        "listener.licenseKey=k",
    )  # fmt: skip
