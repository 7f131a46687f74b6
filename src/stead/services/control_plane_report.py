"""A server started with DEPLOYMENT_TYPE=self_hosted_data_plane and no listener (the seed's ECS
task, plain manifests) reports to its control plane itself: it registers at start, where a
refused enrollment key stops it, then heartbeats its version, health and queue figures. The
control plane being away never stops it from serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

import httpx

from stead import __version__
from stead.config import ControlPlaneLink, Settings
from stead.http_options import mount_prefix
from stead.licenses import LicenseError, refusal, require_well_formed
from stead.services.health import Health
from stead.services.webhooks import server_url

logger = logging.getLogger(__name__)

HEARTBEAT_PATH = "/v1/data-plane/servers/heartbeat"


class ControlPlaneUnreachable(Exception):
    pass


def reporter_for(settings: Settings) -> ControlPlaneReporter | None:
    if settings.control_plane is None:
        return None
    url = server_url(settings.host, settings.port, mount_prefix(settings))
    interval = float(os.environ.get("STEAD_CONTROL_PLANE_HEARTBEAT_SECONDS") or 10)
    return ControlPlaneReporter(settings.control_plane, url, interval)


class ControlPlaneReporter:
    def __init__(self, link: ControlPlaneLink, url: str, interval_seconds: float) -> None:
        self._link = link
        self._url = link.public_url or url
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def register(self) -> None:
        """At start: LicenseError when the control plane refuses the key; a control plane that
        cannot be reached only delays registration to the next heartbeat."""
        require_well_formed(self._link.license_key)
        try:
            await self.report({"status": "starting"}, None)
        except ControlPlaneUnreachable as exc:
            logger.warning("control plane unreachable (%s); serving, will report later", exc)

    def start(self, health: Health) -> None:
        self._task = asyncio.create_task(self._heartbeats(health), name="control-plane report")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def report(self, health: dict[str, str], queue: dict[str, Any] | None) -> None:
        body = {
            "name": self._link.deployment_name,
            "url": self._url,
            "version": __version__,
            "replica": f"{socket.gethostname()}:{os.getpid()}",
            "health": health,
            "queue": queue,
        }
        headers = {"Authorization": f"Bearer {self._link.license_key}"}
        try:
            async with httpx.AsyncClient(timeout=10.0) as client:
                response = await client.post(
                    self._link.url + HEARTBEAT_PATH, json=body, headers=headers
                )
        except httpx.TransportError as exc:
            raise ControlPlaneUnreachable(type(exc).__name__) from None
        if response.status_code in (401, 403):
            raise refusal(str(response.json().get("detail")))
        if not response.is_success:
            raise ControlPlaneUnreachable(f"it answered {response.status_code}")

    async def _heartbeats(self, health: Health) -> None:
        away = False
        while True:
            await asyncio.sleep(self._interval)
            checks = await health.readiness()
            figures = await health.refresh_metrics()
            queue = {
                "pending": figures.pending,
                "running": figures.running,
                "oldest_pending_age_seconds": figures.oldest_pending_age_seconds,
            }
            try:
                await self.report(checks, queue)
            except ControlPlaneUnreachable as exc:
                if not away:
                    logger.warning("control plane unreachable (%s); still serving", exc)
                away = True
                continue
            except LicenseError as exc:  # refused mid-way (revoked, expired): keep serving
                logger.error("control plane refused this server's report: %s", exc)
                continue
            if away:
                logger.info("control plane reachable again")
            away = False
