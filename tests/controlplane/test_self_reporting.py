"""A `stead run` with DEPLOYMENT_TYPE=self_hosted_data_plane and no listener (the seed's ECS task):
it registers with the control plane, heartbeats its health and queue, shows there as a deployment
managed outside the listeners, keeps serving while the control plane is away, and refuses to
start on a key the control plane refuses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_sync_client

from tests.support.controlplane import ControlPlane, control_plane, stead, wait_for
from tests.support.servers import free_port, stead_server

PROJECT = Path(__file__).parent / "project"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    env = {"CONTROL_PLANE_HEARTBEAT_TIMEOUT": "3"}
    with control_plane(tmp_path_factory.mktemp("cp"), env=env) as started:
        started.api_key("acme")  # the workspace the servers' keys enroll into
        yield started


def reporting_env(plane: ControlPlane, name: str, key: str | None = None) -> dict[str, str]:
    return {
        "DEPLOYMENT_TYPE": "self_hosted_data_plane",
        "CONTROL_PLANE_URL": plane.url,
        "LICENSE_KEY": key if key is not None else plane.license("acme"),
        "STEAD_DEPLOYMENT_NAME": name,
        "STEAD_CONTROL_PLANE_HEARTBEAT_SECONDS": "0.5",
    }


def shown(plane: ControlPlane, name: str) -> dict:
    with plane.client() as client:
        found = client.get("/v2/deployments", params={"name": name}).json()["resources"]
    return found[0] if found else {}


def test_a_self_reporting_server_registers_heartbeats_and_shows_its_health(
    plane: ControlPlane, tmp_path: Path
) -> None:
    env = reporting_env(plane, "ecs-agent")
    with stead_server(PROJECT / "langgraph.json", tmp_path / "data", env) as server:
        deployment = wait_for(
            lambda: (
                ((found := shown(plane, "ecs-agent")).get("health") or {}).get("database") and found
            ),
            what="the first heartbeat after start-up",
        )
        assert deployment["managed_by"] == "self"
        assert deployment["status"] == "READY"
        assert deployment["source_config"]["custom_url"] == server.url
        assert deployment["health"] == {"database": "ok", "schema": "ok", "graphs": "ok"}
        assert deployment["image_version"]

        plane.stop()
        try:
            # The control plane away: the server keeps serving.
            client = get_sync_client(url=server.url)
            result = client.runs.wait(None, "greeter", input={"name": "ada"})
            assert result["greeting"].endswith("ada (v1)")
        finally:
            plane.start()
        first_seen = shown(plane, "ecs-agent")["last_heartbeat_at"]
        wait_for(
            lambda: shown(plane, "ecs-agent")["last_heartbeat_at"] > first_seen,
            what="heartbeats to resume",
        )
    # It stopped reporting: the control plane no longer vouches for it.
    wait_for(lambda: shown(plane, "ecs-agent")["status"] == "UNKNOWN", what="UNKNOWN")


def start_refused(env: dict[str, str], tmp_path: Path) -> tuple[int, str]:
    done = stead(
        "run", "-c", str(PROJECT / "langgraph.json"), "--port", str(free_port()),
        "--data-dir", str(tmp_path / "data"), env=env,
    )  # fmt: skip
    if env["LICENSE_KEY"]:
        assert env["LICENSE_KEY"] not in done.stdout + done.stderr
    return done.returncode, done.stderr.strip()


def test_a_forged_key_stops_the_server_at_start(plane: ControlPlane, tmp_path: Path) -> None:
    other = stead(
        "license", "issue", "--subject", "acme", "--scope", "data-plane",
        "--data-dir", str(tmp_path / "elsewhere"),
    )  # fmt: skip
    key = other.stdout.strip().splitlines()[-1]
    code, error = start_refused(reporting_env(plane, "forged", key), tmp_path)
    assert code == 3
    assert error.splitlines()[-1].startswith("stead: INVALID_LICENSE: its signature")
    assert shown(plane, "forged") == {}


def test_an_expired_key_stops_the_server_with_its_own_code(
    plane: ControlPlane, tmp_path: Path
) -> None:
    key = plane.license("acme", "--expires", "2020-01-01")
    code, error = start_refused(reporting_env(plane, "expired", key), tmp_path)
    assert code == 4
    assert error.splitlines()[-1].startswith("stead: LICENSE_EXPIRED")


def test_without_a_key_the_server_says_what_is_missing(tmp_path: Path) -> None:
    env = {"DEPLOYMENT_TYPE": "self_hosted_data_plane", "CONTROL_PLANE_URL": "", "LICENSE_KEY": ""}
    code, error = start_refused(env, tmp_path)
    assert code == 1
    assert error == (
        "stead: error: DEPLOYMENT_TYPE=self_hosted_data_plane needs CONTROL_PLANE_URL and "
        "LICENSE_KEY"
    )


def test_a_control_plane_that_cannot_be_reached_does_not_keep_the_server_from_serving(
    plane: ControlPlane, tmp_path: Path
) -> None:
    env = {**reporting_env(plane, "lonely"), "CONTROL_PLANE_URL": f"http://127.0.0.1:{free_port()}"}
    with stead_server(PROJECT / "langgraph.json", tmp_path / "data", env) as server:
        assert "control plane unreachable" in server.log()
        result = get_sync_client(url=server.url).runs.wait(None, "greeter", input={})
        assert result["greeting"].endswith("world (v1)")
