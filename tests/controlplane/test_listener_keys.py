"""`stead listener` refuses to start on a key the control plane does not accept: INVALID_LICENSE
(exit 3) for a malformed, forged or wrongly scoped key, LICENSE_EXPIRED (exit 4) for an expired
one; one line on stderr, which never quotes the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import ControlPlane, control_plane, start_listener, stead, wait_for


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("cp")) as started:
        yield started


def refused(plane: ControlPlane, key: str, tmp_path: Path) -> tuple[int, str]:
    registered = plane.create_listener(f"host-{tmp_path.name}")
    listener = start_listener(plane, registered["id"], tmp_path / "listener", license_key=key)
    code = listener.process.wait(30)
    output = listener.log()
    assert key not in output
    assert output.count("\n") == 1, output
    return code, output


def test_a_malformed_key_is_refused_before_any_call(plane: ControlPlane, tmp_path: Path) -> None:
    code, output = refused(plane, "not-a-key", tmp_path)
    assert code == 3
    assert output.startswith("stead: INVALID_LICENSE: it is not a key (malformed)")


def test_a_key_signed_by_another_control_plane_is_refused(
    plane: ControlPlane, tmp_path: Path
) -> None:
    forged = stead(
        "license", "issue", "--subject", "acme", "--scope", "data-plane",
        "--data-dir", str(tmp_path / "another-control-plane"),
    )  # fmt: skip
    code, output = refused(plane, forged.stdout.strip().splitlines()[-1], tmp_path)
    assert code == 3
    assert output.startswith("stead: INVALID_LICENSE: its signature is not this control plane's")


def test_a_key_for_another_workspace_is_refused(plane: ControlPlane, tmp_path: Path) -> None:
    code, output = refused(plane, plane.license("someone-else"), tmp_path)
    assert code == 3
    assert output.startswith("stead: INVALID_LICENSE: it enrolls into workspace 'someone-else'")


def test_an_expired_key_is_refused_with_its_own_code(plane: ControlPlane, tmp_path: Path) -> None:
    code, output = refused(plane, plane.license("acme", "--expires", "2020-01-01"), tmp_path)
    assert code == 4
    assert output.startswith("stead: LICENSE_EXPIRED: it expired at 2020-01-01T00:00:00Z")


def test_a_valid_key_is_accepted_and_the_listener_reports(
    plane: ControlPlane, tmp_path: Path
) -> None:
    registered = plane.create_listener("accepted-host")
    listener = start_listener(plane, registered["id"], tmp_path / "listener")
    try:
        with plane.client() as client:
            shown = wait_for(
                lambda: (
                    (found := client.get(f"/v2/listeners/{registered['id']}").json())["status"]
                    == "ONLINE"
                    and found
                ),
                timeout=30,
                what="the listener's first heartbeat",
            )
        assert shown["backend"] == "process"
        assert listener.process.poll() is None
    finally:
        listener.stop()
    assert listener.process.returncode == 0


def test_a_listener_whose_heartbeats_stop_shows_offline_and_its_deployments_unknown(
    tmp_path: Path,
) -> None:
    env = {"CONTROL_PLANE_HEARTBEAT_TIMEOUT": "2"}
    with control_plane(tmp_path / "cp", env=env) as plane:
        registered = plane.create_listener("quiet-host")
        listener = start_listener(plane, registered["id"], tmp_path / "listener")
        with plane.client() as client:
            created = client.post(
                "/v2/deployments",
                json={"name": "placed", "source": "internal_source", "secrets": []},
            ).json()
            listener_path = f"/v2/listeners/{registered['id']}"
            wait_for(lambda: client.get(listener_path).json()["status"] == "ONLINE", 30)
            assert client.get(f"/v2/deployments/{created['id']}").json()["status"] == "READY"
            listener.stop()
            wait_for(lambda: client.get(listener_path).json()["status"] == "OFFLINE", 30)
            assert client.get(f"/v2/deployments/{created['id']}").json()["status"] == "UNKNOWN"
