"""`stead doctor [--config] [--json]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from stead.doctor.findings import FAILED, Finding


def add_doctor_command(commands: Any, project_arguments: Callable[[Any], None]) -> None:
    doctor = commands.add_parser(
        "doctor", help="check the project, database, Redis, key, disk, port and clock"
    )
    project_arguments(doctor)
    doctor.add_argument("--host", default=os.environ.get("STEAD_HOST") or "127.0.0.1")
    doctor.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    doctor.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    doctor.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    findings = asyncio.run(examine(args))
    if args.json:
        print(json.dumps([asdict(finding) for finding in findings], indent=2))
    else:
        for finding in findings:
            print(finding.line())
    return 1 if any(finding.status == FAILED for finding in findings) else 0


async def examine(args: argparse.Namespace) -> list[Finding]:
    from stead.config import load_settings
    from stead.doctor.control_plane import check_enrollment
    from stead.doctor.database import check_database
    from stead.doctor.host import check_disk, check_port
    from stead.doctor.project import check_project
    from stead.doctor.redis import check_redis

    findings, settings = check_project(args.config, args.data_dir)
    if settings is None:
        return findings
    settings = load_settings(args.config, data_dir=args.data_dir, host=args.host, port=args.port)
    findings += await check_database(settings)
    findings += await check_redis(settings)
    findings += check_enrollment(settings)
    findings += [check_disk(settings), check_port(settings)]
    return findings
