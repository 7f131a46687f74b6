"""This host: free space for the data folder, and whether the server's port is free."""

from __future__ import annotations

import shutil
from pathlib import Path

from stead.config import Settings
from stead.doctor.findings import Finding, failed, ok, warning
from stead.sockets import PortInUseError, bind_socket

_MIB = 1024 * 1024
_FAILED_BELOW = 100 * _MIB
_WARNING_BELOW = 1024 * _MIB


def check_disk(settings: Settings) -> Finding:
    folder = _nearest_existing(settings.data_dir)
    usage = shutil.disk_usage(folder)
    message = f"{usage.free / _MIB:,.0f} MiB free of {usage.total / _MIB:,.0f} MiB at {folder}"
    fix = "free space or move the data folder (--data-dir, STEAD_DATA_DIR)"
    if usage.free < _FAILED_BELOW:
        return failed("disk", message, fix)
    if usage.free < _WARNING_BELOW or usage.free < usage.total * 0.05:
        return warning("disk", message, fix)
    return ok("disk", message)


def check_port(settings: Settings) -> Finding:
    try:
        bind_socket(settings.host, settings.port).close()
    except PortInUseError as exc:
        return warning(
            "port",
            f"{exc} (by a server already running?)",
            "stop what listens there, or serve on another port (--port, PORT)",
        )
    return ok("port", f"{settings.host}:{settings.port} is free")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
