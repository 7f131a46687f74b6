"""Rollouts through the control plane, measured: `stead control-plane` and a `stead listener` on
the process backend, a project uploaded as `langgraph deploy --remote` uploads it, then

- time from the revision's creation to DEPLOYED, for the first revision and for a new one;
- the serving gap while a new revision replaces the old one: /ok polled every 20 ms on the
  deployment's URL, the longest stretch without a 200 (median over the rollouts);
- the same for a revision whose graph fails to import, where the old one must never stop.

    python bench/rollout.py [--rollouts 5]

There is no official counterpart to run beside it here (the official control plane and listener
are closed); the figures stand alone. See bench/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.support.controlplane import control_plane, running_listener  # noqa: E402

PROJECT = REPO_ROOT / "tests" / "controlplane" / "project"


class GapMeter:
    """Polls /ok and keeps the longest time without a 200."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> GapMeter:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        down_since: float | None = None
        with httpx.Client(timeout=1.0) as client:
            while not self._stop.is_set():
                try:
                    up = client.get(f"{self._url}/ok").status_code == 200
                except httpx.TransportError:
                    up = False
                now = time.monotonic()
                if up and down_since is not None:
                    self.longest = max(self.longest, now - down_since)
                    down_since = None
                elif not up and down_since is None:
                    down_since = now
                time.sleep(0.02)


def upload(client: httpx.Client, deployment_id: str, folder: Path, secrets: list[dict]) -> str:
    archive = shutil.make_archive(str(folder.parent / f"{folder.name}-src"), "gztar", folder)
    target = client.post(f"/v2/deployments/{deployment_id}/upload-url", json={}).json()
    httpx.put(target["upload_url"], content=Path(archive).read_bytes()).raise_for_status()
    patched = client.patch(
        f"/v2/deployments/{deployment_id}",
        json={
            "source_revision_config": {
                "source_tarball_path": target["object_path"],
                "langgraph_config_path": "langgraph.json",
            },
            "secrets": secrets,
        },
    )
    patched.raise_for_status()
    return str(patched.json()["latest_revision_id"])


def wait_terminal(client: httpx.Client, deployment_id: str, revision_id: str) -> tuple[str, float]:
    started = time.monotonic()
    while True:
        status = client.get(f"/v2/deployments/{deployment_id}/revisions/{revision_id}").json()[
            "status"
        ]
        if status in ("DEPLOYED", "BUILD_FAILED", "DEPLOY_FAILED", "SKIPPED"):
            return status, time.monotonic() - started
        time.sleep(0.1)


def project(root: Path, version: str, broken: bool = False) -> Path:
    folder = root / f"project-{version}"
    shutil.copytree(PROJECT, folder, dirs_exist_ok=True)
    graph = folder / "src" / "greeter" / "graph.py"
    code = graph.read_text().replace('CODE_VERSION = "v1"', f'CODE_VERSION = "{version}"')
    graph.write_text(("import nosuchmodule  # noqa\n" if broken else "") + code)
    return folder


SECRETS = [{"name": "GREETING", "value": "hi"}]


def measure(client: httpx.Client, root: Path, rollouts: int) -> dict[str, list[float]]:
    created = client.post(
        "/v2/deployments", json={"name": "bench", "source": "internal_source", "secrets": []}
    ).json()
    deployment_id = created["id"]
    first = upload(client, deployment_id, project(root, "v1"), SECRETS)
    status, first_seconds = wait_terminal(client, deployment_id, first)
    assert status == "DEPLOYED", status
    url = client.get(f"/v2/deployments/{deployment_id}").json()["source_config"]["custom_url"]
    figures: dict[str, list[float]] = {"first": [first_seconds], "rollout": [], "gap": []}
    figures["failed_gap"] = []
    for index in range(rollouts):
        for version, broken, wanted in ((f"v{index + 2}", False, "DEPLOYED"),
                                        (f"b{index}", True, "DEPLOY_FAILED")):  # fmt: skip
            with GapMeter(url) as meter:
                folder = project(root, version, broken=broken)
                revision = upload(client, deployment_id, folder, SECRETS)
                status, seconds = wait_terminal(client, deployment_id, revision)
            assert status == wanted, status
            if broken:
                figures["failed_gap"].append(meter.longest)
            else:
                figures["rollout"].append(seconds)
                figures["gap"].append(meter.longest)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stead-rollout-") as tmp:
        root = Path(tmp)
        with control_plane(root / "cp") as plane:
            listener = plane.create_listener("bench-host")["id"]
            with running_listener(plane, listener, root / "listener"), plane.client() as client:
                figures = measure(client, root, args.rollouts)
    rollouts = figures["rollout"]
    print(f"first revision to DEPLOYED: {figures['first'][0]:.1f} s (builds its virtualenv)")
    print(
        f"new revision to DEPLOYED: median {statistics.median(rollouts):.1f} s "
        f"(min {min(rollouts):.1f}, max {max(rollouts):.1f}) over {args.rollouts} rollouts"
    )
    print(
        f"longest /ok gap during a rollout: median {statistics.median(figures['gap']) * 1000:.0f}"
        f" ms (max {max(figures['gap']) * 1000:.0f} ms)"
    )
    print(
        f"longest /ok gap during a failed rollout: max {max(figures['failed_gap']) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
