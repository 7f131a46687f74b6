"""The official `langgraph deploy` (langgraph-cli 0.4.40) against a Stead control plane, with a
`stead listener` running deployments on the process backend: deploy, serve, roll out, fail, roll
back, delete; and what happens when the listener or the control plane goes away."""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_sync_client

from tests.support.controlplane import (
    ControlPlane,
    Listener,
    control_plane,
    official_cli,
    running_listener,
    start_listener,
    stop_deployments,
    wait_deployed,
    wait_for,
)
from tests.support.servers import ensure_official_venv

PROJECT = Path(__file__).parent / "project"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    ensure_official_venv()
    with control_plane(tmp_path_factory.mktemp("cp")) as started:
        yield started


@pytest.fixture(scope="module")
def listener(plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Listener]:
    registered = plane.create_listener("laptop")
    data_dir = tmp_path_factory.mktemp("listener") / "data"
    with running_listener(plane, registered["id"], data_dir) as started:
        yield started


def project(tmp_path: Path, version: str = "v1", broken: bool = False) -> Path:
    folder = tmp_path / f"project-{version}"
    shutil.copytree(PROJECT, folder, dirs_exist_ok=True)
    graph = folder / "src" / "greeter" / "graph.py"
    code = graph.read_text().replace('CODE_VERSION = "v1"', f'CODE_VERSION = "{version}"')
    graph.write_text(("import nosuchmodule  # noqa\n" if broken else "") + code)
    return folder


def deploy(plane: ControlPlane, folder: Path, name: str) -> Any:
    return official_cli("deploy", "--remote", "--no-input", "--name", name, cwd=folder, plane=plane)


def deployment_named(plane: ControlPlane, name: str, tenant: str = "acme") -> dict[str, Any]:
    with plane.client(tenant) as client:
        (found,) = client.get("/v2/deployments", params={"name": name}).json()["resources"]
    return dict(found)


def greet(url: str, name: str = "ada") -> str:
    client = get_sync_client(url=url)
    return str(client.runs.wait(None, "greeter", input={"name": name})["greeting"])


def state_of(listener: Listener, deployment_id: str) -> dict[str, Any]:
    path = listener.data_dir / "deployments" / deployment_id / "state.json"
    return dict(json.loads(path.read_text()))


def test_remote_deploy_reaches_deployed_and_serves_the_graph_with_its_secrets(
    plane: ControlPlane, listener: Listener, tmp_path: Path
) -> None:
    done = deploy(plane, project(tmp_path), "greeter-first")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Deployment successful" in done.stdout
    deployment = deployment_named(plane, "greeter-first")
    url = deployment["source_config"]["custom_url"]
    assert f"URL: {url}" in done.stdout
    # The project's .env became the deployment's secrets, passed to its processes.
    assert greet(url) == "bonjour, ada (v1)"
    assert deployment["secrets"] == [{"name": "GREETING", "value": "********"}]

    listing = official_cli("deploy", "list", cwd=tmp_path, plane=plane)
    assert listing.returncode == 0, listing.stderr
    assert "greeter-first" in listing.stdout and url in listing.stdout
    revisions = official_cli(
        "deploy", "revisions", "list", deployment["id"], cwd=tmp_path, plane=plane
    )
    assert revisions.returncode == 0, revisions.stderr
    assert f"{deployment['latest_revision_id']}  DEPLOYED" in revisions.stdout
    logs = official_cli(
        "deploy", "logs", "--type", "build", "--name", "greeter-first", cwd=tmp_path, plane=plane
    )
    assert logs.returncode == 0, logs.stderr
    assert "build finished" in logs.stdout


def test_a_second_deploy_rolls_out_on_the_same_url_keeping_data_and_redeploy_rolls_back(
    plane: ControlPlane, listener: Listener, tmp_path: Path
) -> None:
    assert deploy(plane, project(tmp_path, "v1"), "greeter-roll").returncode == 0
    first = deployment_named(plane, "greeter-roll")
    url = first["source_config"]["custom_url"]
    thread = get_sync_client(url=url).threads.create(metadata={"kept": "yes"})

    done = deploy(plane, project(tmp_path, "v2"), "greeter-roll")
    assert done.returncode == 0, done.stdout + done.stderr
    second = deployment_named(plane, "greeter-roll")
    assert second["latest_revision_id"] != first["latest_revision_id"]
    assert second["active_revision_id"] == second["latest_revision_id"]
    assert second["source_config"]["custom_url"] == url
    assert greet(url) == "bonjour, ada (v2)"
    # The database is the deployment's, not the revision's.
    assert get_sync_client(url=url).threads.get(thread["thread_id"])["metadata"] == {"kept": "yes"}
    revisions = official_cli("deploy", "revisions", "list", first["id"], cwd=tmp_path, plane=plane)
    assert f"{first['latest_revision_id']}  REPLACED" in revisions.stdout

    with plane.client() as client:
        path = f"/v2/deployments/{first['id']}/revisions/{first['latest_revision_id']}/redeploy"
        rolled = client.post(path)
        assert rolled.status_code == 200, rolled.text
        rollback_id = rolled.json()["latest_revision_id"]
        wait_deployed(client, first["id"], rollback_id)
    assert greet(url) == "bonjour, ada (v1)"


def test_a_revision_whose_graph_does_not_import_fails_and_the_old_one_keeps_serving(
    plane: ControlPlane, listener: Listener, tmp_path: Path
) -> None:
    assert deploy(plane, project(tmp_path, "v1"), "greeter-broken").returncode == 0
    good = deployment_named(plane, "greeter-broken")
    url = good["source_config"]["custom_url"]
    serving_pids = [p["pid"] for p in state_of(listener, good["id"])["processes"]]

    done = deploy(plane, project(tmp_path, "v2", broken=True), "greeter-broken")
    assert done.returncode != 0
    assert "Deployment failed" in done.stdout + done.stderr
    after = deployment_named(plane, "greeter-broken")
    failed_id = after["latest_revision_id"]
    assert after["active_revision_id"] == good["latest_revision_id"]
    with plane.client() as client:
        revision = client.get(f"/v2/deployments/{good['id']}/revisions/{failed_id}").json()
    assert revision["status"] == "DEPLOY_FAILED"
    logs = official_cli(
        "deploy", "logs", "--type", "deploy", "--deployment-id", good["id"],
        "--revision-id", failed_id, cwd=tmp_path, plane=plane,
    )  # fmt: skip
    assert "No module named 'nosuchmodule'" in logs.stdout
    # The old revision was never stopped: the same processes answer.
    assert [p["pid"] for p in state_of(listener, good["id"])["processes"]] == serving_pids
    assert greet(url) == "bonjour, ada (v1)"


def test_deleting_a_deployment_stops_it_and_removes_its_data(
    plane: ControlPlane, listener: Listener, tmp_path: Path
) -> None:
    assert deploy(plane, project(tmp_path), "greeter-deleted").returncode == 0
    deployment = deployment_named(plane, "greeter-deleted")
    url = deployment["source_config"]["custom_url"]
    folder = listener.data_dir / "deployments" / deployment["id"]
    assert folder.exists()

    done = official_cli("deploy", "delete", deployment["id"], "--force", cwd=tmp_path, plane=plane)
    assert done.returncode == 0, done.stderr
    with plane.client() as client:
        wait_for(
            lambda: client.get(f"/v2/deployments/{deployment['id']}").status_code == 404,
            what="the listener to confirm the deletion",
        )
    assert not folder.exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/ok", timeout=2)


def test_a_crashed_server_is_restarted_by_the_listener(
    plane: ControlPlane, listener: Listener, tmp_path: Path
) -> None:
    assert deploy(plane, project(tmp_path), "greeter-crash").returncode == 0
    deployment = deployment_named(plane, "greeter-crash")
    (api,) = state_of(listener, deployment["id"])["processes"]
    os.killpg(api["pid"], signal.SIGKILL)

    restarted = wait_for(
        lambda: state_of(listener, deployment["id"])["processes"][0]["pid"] != api["pid"],
        what="the listener to restart the server",
    )
    assert restarted
    url = deployment["source_config"]["custom_url"]
    wait_for(lambda: _answers(url), what="the restarted server to answer")
    assert greet(url) == "bonjour, ada (v1)"


def test_sigkill_of_the_listener_leaves_deployments_serving_and_a_new_listener_adopts_them(
    plane: ControlPlane, tmp_path: Path
) -> None:
    registered = plane.create_listener("adopting-host", tenant="adopters")
    data_dir = tmp_path / "listener"
    key = plane.license("adopters")
    first = start_listener(plane, registered["id"], data_dir, license_key=key)
    try:
        with plane.client("adopters") as client:
            created = _create_and_upload(client, "greeter-adopted", registered["id"], tmp_path)
            wait_deployed(client, created["id"], created["latest_revision_id"])
        deployment = deployment_named(plane, "greeter-adopted", "adopters")
        url = deployment["source_config"]["custom_url"]
        pids = [p["pid"] for p in state_of_dir(data_dir, created["id"])["processes"]]

        first.stop(kill=True)
        assert greet(url) == "salut, ada (v1)"

        second = start_listener(plane, registered["id"], data_dir, license_key=key)
        try:
            with plane.client("adopters") as client:
                wait_for(
                    lambda: (
                        client.get(f"/v2/listeners/{registered['id']}").json()["status"] == "ONLINE"
                    ),
                    what="the new listener's heartbeat",
                )
                listed = client.get(f"/v2/deployments/{created['id']}").json()
            assert listed["status"] == "READY"
            # Adopted, not restarted.
            assert [p["pid"] for p in state_of_dir(data_dir, created["id"])["processes"]] == pids
            assert greet(url) == "salut, ada (v1)"
        finally:
            second.stop()
    finally:
        first.stop()
        stop_deployments(data_dir)


def test_with_two_listeners_each_deployment_runs_on_the_one_it_names(
    plane: ControlPlane, tmp_path: Path
) -> None:
    east = plane.create_listener("cluster-east", tenant="two-clusters")
    west = plane.create_listener("cluster-west", tenant="two-clusters")
    key = plane.license("two-clusters")
    # The official CLI asks which listener when a workspace has several.
    done = official_cli(
        "deploy", "--remote", "--no-input", "--name", "unplaced", cwd=project(tmp_path),
        plane=plane, tenant="two-clusters",
    )  # fmt: skip
    assert done.returncode != 0
    assert "listener" in (done.stdout + done.stderr).lower()
    with (
        running_listener(plane, east["id"], tmp_path / "east", license_key=key),
        running_listener(plane, west["id"], tmp_path / "west", license_key=key),
        plane.client("two-clusters") as client,
    ):
        placed = {
            name: _create_and_upload(client, name, listener["id"], tmp_path / name)
            for name, listener in (("on-east", east), ("on-west", west))
        }
        for created in placed.values():
            wait_deployed(client, created["id"], created["latest_revision_id"])
        for name, folder in (("on-east", "east"), ("on-west", "west")):
            here = tmp_path / folder / "deployments" / placed[name]["id"]
            other = "west" if folder == "east" else "east"
            assert (here / "state.json").exists()
            assert not (tmp_path / other / "deployments" / placed[name]["id"]).exists()
            url = client.get(f"/v2/deployments/{placed[name]['id']}").json()["source_config"]
            assert greet(url["custom_url"]) == "salut, ada (v1)"


def test_the_control_plane_away_changes_nothing_and_its_restart_keeps_state(
    plane: ControlPlane, listener: Listener, tmp_path: Path
) -> None:
    assert deploy(plane, project(tmp_path), "greeter-outage").returncode == 0
    before = deployment_named(plane, "greeter-outage")
    url = before["source_config"]["custom_url"]

    plane.stop()
    try:
        assert greet(url) == "bonjour, ada (v1)"
        assert listener.process.poll() is None
    finally:
        plane.start()
    assert deployment_named(plane, "greeter-outage") == before
    with plane.client() as client:
        wait_for(
            lambda: (
                client.get(f"/v2/listeners/{listener.listener_id}").json()["status"] == "ONLINE"
            ),
            what="the listener to report again",
        )


def state_of_dir(data_dir: Path, deployment_id: str) -> dict[str, Any]:
    return dict(json.loads((data_dir / "deployments" / deployment_id / "state.json").read_text()))


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ok", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _create_and_upload(
    client: httpx.Client, name: str, listener_id: str, tmp_path: Path
) -> dict[str, Any]:
    created = client.post(
        "/v2/deployments",
        json={
            "name": name,
            "source": "internal_source",
            "source_config": {"listener_id": listener_id},
            "secrets": [{"name": "GREETING", "value": "salut"}],
        },
    )
    assert created.status_code == 201, created.text
    return _upload_revision(client, created.json()["id"], project(tmp_path))


def _upload_revision(client: httpx.Client, deployment_id: str, folder: Path) -> dict[str, Any]:
    """What `langgraph deploy --remote` does after creating the deployment; the deployment with
    its new revision."""
    archive = shutil.make_archive(str(folder.parent / "source"), "gztar", folder)
    target = client.post(f"/v2/deployments/{deployment_id}/upload-url", json={}).json()
    put = httpx.put(target["upload_url"], content=Path(archive).read_bytes())
    assert put.status_code == 200, put.text
    patched = client.patch(
        f"/v2/deployments/{deployment_id}",
        json={
            "revision_source": "internal_source",
            "source_revision_config": {
                "source_tarball_path": target["object_path"],
                "langgraph_config_path": "langgraph.json",
            },
        },
    )
    assert patched.status_code == 200, patched.text
    return dict(patched.json())
