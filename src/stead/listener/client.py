"""The listener's calls to the control plane (its /v1/data-plane paths), authenticated by the
enrollment key. The key is sent, never logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from stead.licenses import refusal


class ControlPlaneUnavailable(Exception):
    """The control plane did not answer (or answered 5xx): try again later."""


class RevisionSuperseded(Exception):
    """The control plane refused a report (409): the revision was replaced or already moved on."""


class ControlPlaneClient:
    def __init__(self, base_url: str, license_key: str, listener_id: str) -> None:
        self._client = httpx.Client(
            base_url=f"{base_url}/v1/data-plane/listeners/{listener_id}",
            headers={"Authorization": f"Bearer {license_key}"},
            timeout=30.0,
        )

    def desired_state(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/deployments").json()["deployments"])

    def heartbeat(self, report: dict[str, Any]) -> None:
        self._call("POST", "/heartbeat", json=report)

    def report_status(
        self, revision_id: str, status: str, message: str | None = None, url: str | None = None
    ) -> None:
        body = {"status": status, "message": message, "url": url}
        self._call("POST", f"/revisions/{revision_id}/status", json=body)

    def append_logs(self, revision_id: str, log_type: str, lines: list[dict[str, Any]]) -> None:
        for start in range(0, len(lines), 1000):
            body = {"type": log_type, "lines": lines[start : start + 1000]}
            self._call("POST", f"/revisions/{revision_id}/logs", json=body)

    def download_source(self, revision_id: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._client.stream("GET", f"/revisions/{revision_id}/source") as response:
            _raise_for(response)
            with target.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)

    def confirm_deleted(self, deployment_id: str) -> None:
        self._call("POST", f"/deployments/{deployment_id}/deleted")

    def close(self) -> None:
        self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ControlPlaneUnavailable(f"{type(exc).__name__}: {exc}") from None
        _raise_for(response)
        return response


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    if response.status_code in (401, 403):
        response.read()
        raise refusal(_detail(response))
    if response.status_code == 409:
        response.read()
        raise RevisionSuperseded(_detail(response))
    if response.status_code >= 500:
        raise ControlPlaneUnavailable(f"the control plane answered {response.status_code}")
    response.read()
    raise RuntimeError(
        f"the control plane refused a call ({response.status_code}): {_detail(response)}"
    )


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:200]
