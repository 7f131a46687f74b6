"""`stead listener`: reconcile the deployments a control plane places on this data plane."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

from stead.listener.settings import BACKENDS, DEFAULT_DATA_DIR, load_listener_settings


def add_listener_command(commands: Any) -> None:
    listener = commands.add_parser(
        "listener",
        help="run the deployments a control plane places here (reads CONTROL_PLANE_URL, "
        "LICENSE_KEY, LISTENER_ID)",
    )
    listener.add_argument("--backend", choices=BACKENDS, default="process")
    listener.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("STEAD_LISTENER_DATA_DIR") or DEFAULT_DATA_DIR),
        help=f"where deployments live (default: $STEAD_LISTENER_DATA_DIR, else {DEFAULT_DATA_DIR})",
    )
    listener.set_defaults(handler=_listen)


def _listen(args: argparse.Namespace) -> int:
    from stead.licenses import require_well_formed
    from stead.listener.client import ControlPlaneClient
    from stead.listener.reconciler import Reconciler
    from stead.observability.logs import configure_logging

    settings = load_listener_settings(args.backend, args.data_dir)
    require_well_formed(settings.license_key)
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper(), False)
    client = ControlPlaneClient(
        settings.control_plane_url, settings.license_key, settings.listener_id
    )
    reconciler = Reconciler(settings, client, _backend(settings, client))

    def stop(_sig: int, _frame: FrameType | None) -> None:
        reconciler.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    reconciler.check_enrollment()
    logging.getLogger("stead").info(
        "listener %s (%s backend) polling %s; deployments keep running when it stops",
        settings.listener_id,
        settings.backend,
        settings.control_plane_url,
    )
    try:
        reconciler.run()
    finally:
        client.close()
    return 0


def _backend(settings: Any, client: Any) -> Any:
    if settings.backend == "process":
        from stead.listener.backends.process import ProcessBackend

        return ProcessBackend(settings.data_dir, client, settings.deploy_timeout_seconds)
    if settings.backend == "docker":
        from stead.listener.backends.docker import DockerBackend

        return DockerBackend(settings.data_dir, settings.deploy_timeout_seconds)
    from stead.listener.backends.kubernetes import KubernetesBackend

    return KubernetesBackend(
        settings.helm_chart,
        list(settings.k8s_namespaces),
        settings.deploy_timeout_seconds,
        settings.helm,
    )
