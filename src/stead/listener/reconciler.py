"""The poll loop: read the desired state, roll out new revisions (reporting each status and the
log lines), keep the serving revision running, remove deleted deployments, and heartbeat. The
control plane being away changes nothing for what runs: supervision goes on from local state."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from stead import __version__
from stead.controlplane.services import statuses
from stead.licenses import LicenseError
from stead.listener.backends.base import Backend, RolloutFailed
from stead.listener.client import ControlPlaneClient, ControlPlaneUnavailable, RevisionSuperseded
from stead.listener.settings import ListenerSettings

logger = logging.getLogger("stead.listener")

# A rollout's statuses in order: a listener restarted mid-rollout reports only those ahead.
_ROLLOUT_ORDER = (
    statuses.QUEUED,
    statuses.AWAITING_BUILD,
    statuses.BUILDING,
    statuses.AWAITING_DEPLOY,
    statuses.DEPLOYING,
    statuses.DEPLOYED,
)
_MAX_BACKOFF_SECONDS = 30.0
# Touched at every turn of the loop: `stead healthcheck --listener DIR` reads its age.
ALIVE_FILE = "listener-alive"


class RevisionLog:
    """Log lines of one revision, sent to the control plane in batches."""

    def __init__(self, client: ControlPlaneClient, revision_id: str, log_type: str) -> None:
        self._client = client
        self._revision_id = revision_id
        self._type = log_type
        self._lines: list[dict[str, Any]] = []

    def __call__(self, message: str, level: str) -> None:
        self._lines.append(
            {"message": message, "level": level, "timestamp": datetime.now(UTC).isoformat()}
        )

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        if lines:
            self._client.append_logs(self._revision_id, self._type, lines)


class Reconciler:
    def __init__(
        self, settings: ListenerSettings, client: ControlPlaneClient, backend: Backend
    ) -> None:
        self._settings = settings
        self._client = client
        self._backend = backend
        self._stopping = threading.Event()
        self._license_error: LicenseError | None = None

    def run(self) -> None:
        """Until stopped; raises LicenseError when the control plane refuses the key."""
        beats = threading.Thread(target=self._heartbeats, name="heartbeats", daemon=True)
        beats.start()
        backoff = self._settings.poll_seconds
        while not self._stopping.is_set():
            self._settings.data_dir.mkdir(parents=True, exist_ok=True)
            (self._settings.data_dir / ALIVE_FILE).touch()
            self._backend.supervise()
            try:
                self.reconcile_once()
                backoff = self._settings.poll_seconds
            except ControlPlaneUnavailable as exc:
                logger.warning("control plane unavailable (%s); retrying in %.0f s", exc, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
            if self._license_error is not None:
                raise self._license_error
            self._stopping.wait(backoff)

    def check_enrollment(self) -> None:
        """Have the control plane judge the key before anything else (LicenseError when it
        refuses it); when it cannot be reached, the loop retries."""
        try:
            self.heartbeat()
        except ControlPlaneUnavailable as exc:
            logger.warning("control plane unavailable (%s); running from local state", exc)

    def stop(self) -> None:
        self._stopping.set()

    def reconcile_once(self) -> None:
        for deployment in self._client.desired_state():
            self._reconcile(deployment)

    def heartbeat(self) -> None:
        running = {
            r.deployment_id: {"revision_id": r.revision_id, "url": r.url, "healthy": r.healthy}
            for r in self._backend.running()
        }
        report = {"version": __version__, "backend": self._backend.name, "deployments": running}
        self._client.heartbeat(report)

    def _heartbeats(self) -> None:
        while True:
            try:
                self.heartbeat()
            except ControlPlaneUnavailable:
                pass
            except LicenseError as exc:
                self._license_error = exc
                return
            if self._stopping.wait(self._settings.heartbeat_seconds):
                return

    def _reconcile(self, deployment: dict[str, Any]) -> None:
        if deployment["status"] == statuses.AWAITING_DELETE:
            logger.info("removing deployment %s", deployment["name"])
            self._backend.remove(deployment["id"])
            self._client.confirm_deleted(deployment["id"])
            return
        latest = deployment["latest_revision"]
        if latest is not None and latest["status"] in statuses.IN_PROGRESS:
            self._roll_out(deployment, latest)
            return
        serving = latest if latest and latest["status"] == statuses.DEPLOYED else None
        serving = serving or deployment["active_revision"]
        if serving and self._backend.current_revision(deployment["id"]) != serving["id"]:
            self._restore(deployment, serving)

    def _roll_out(self, deployment: dict[str, Any], revision: dict[str, Any]) -> None:
        logger.info("rolling out revision %s of %s", revision["id"], deployment["name"])
        build_log = RevisionLog(self._client, revision["id"], "build")
        deploy_log = RevisionLog(self._client, revision["id"], "deploy")
        progress = _Progress(self._client, revision)
        try:
            if self._backend.needs_build(revision):
                progress.reach(statuses.AWAITING_BUILD)
                progress.reach(statuses.BUILDING)
                try:
                    self._backend.build(deployment, revision, build_log)
                finally:
                    build_log.flush()
            progress.reach(statuses.AWAITING_DEPLOY)
            progress.reach(statuses.DEPLOYING)
            try:
                url = self._backend.deploy(deployment, revision, deploy_log)
            finally:
                deploy_log.flush()
            progress.reach(statuses.DEPLOYED, url=url)
        except RolloutFailed as failed:
            logger.warning("revision %s: %s: %s", revision["id"], failed.status, failed.message)
            self._client.report_status(revision["id"], failed.status, failed.message)
        except RevisionSuperseded as exc:
            logger.info("revision %s was superseded: %s", revision["id"], exc)

    def _restore(self, deployment: dict[str, Any], revision: dict[str, Any]) -> None:
        """Run a revision that was rolled out before (on another host, or before a failure)."""
        logger.info("starting revision %s of %s", revision["id"], deployment["name"])
        log = RevisionLog(self._client, revision["id"], "deploy")
        try:
            if self._backend.needs_build(revision):
                self._backend.build(deployment, revision, log)
            self._backend.deploy(deployment, revision, log)
        except RolloutFailed as failed:
            logger.error("revision %s does not start again: %s", revision["id"], failed.message)
        finally:
            log.flush()


class _Progress:
    def __init__(self, client: ControlPlaneClient, revision: dict[str, Any]) -> None:
        self._client = client
        self._revision_id = revision["id"]
        self._at = _ROLLOUT_ORDER.index(revision["status"])

    def reach(self, status: str, url: str | None = None) -> None:
        index = _ROLLOUT_ORDER.index(status)
        if index > self._at:
            self._client.report_status(self._revision_id, status, url=url)
            self._at = index
