"""The `stead` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import uvicorn

from stead.allocator import (
    collect_young_objects_less_often,
    freeze_startup_objects,
    return_large_blocks_to_the_system,
)
from stead.backup.commands import add_backup_commands
from stead.backup.manifest import BackupError
from stead.config import ConfigError, Settings, load_settings
from stead.controlplane.commands import add_control_plane_commands
from stead.doctor.commands import add_doctor_command
from stead.gil import hand_the_gil_over_sooner
from stead.graphs import GraphLoadError, load_graph_specs
from stead.http_protocol import HttpProtocol
from stead.licenses import LicenseError
from stead.listener.commands import add_listener_command
from stead.observability.logs import configure_logging
from stead.observability.tracing import configure_tracing
from stead.shutdown import CutShortLogFilter, server_shutdown
from stead.sockets import PortInUseError, bind_socket


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = _parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.handler(args))
    except (BackupError, ConfigError, GraphLoadError, PortInUseError) as exc:
        print(f"stead: error: {exc}", file=sys.stderr)
        return 1
    except LicenseError as exc:
        print(f"stead: {exc.code}: {exc}", file=sys.stderr)
        return exc.exit_status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stead", description="Serve LangGraph agents.")
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="serve the Agent Server API")
    _project_arguments(run)
    run.add_argument(
        "--host",
        default=os.environ.get("STEAD_HOST") or "127.0.0.1",
        help="default: $STEAD_HOST, else 127.0.0.1",
    )
    run.add_argument("--port", type=int, default=_default_port(), help="default: $PORT, else 8000")
    run.add_argument(
        "--reuse-port",
        action="store_true",
        help="share --port with other `stead run` processes on this host (SO_REUSEPORT): the "
        "kernel spreads connections over them",
    )
    run.add_argument(
        "--probe-port",
        type=int,
        help="also serve on this port, alone: to check this one process when several share --port",
    )
    run.set_defaults(handler=_run)
    worker = commands.add_parser(
        "worker", help="execute runs without serving the API (serves /ok, /ready and /metrics)"
    )
    _project_arguments(worker)
    worker.add_argument("--host", default="127.0.0.1", help="address of the /ok probe")
    worker.add_argument("--port", type=int, default=8080, help="port of the /ok probe")
    worker.set_defaults(handler=_worker)
    check = commands.add_parser(
        "check", help="import every graph of langgraph.json and exit: 0 when they all load"
    )
    _config_argument(check)
    check.set_defaults(handler=_check)
    migrate = commands.add_parser(
        "migrate", help="apply database migrations (safe when several replicas start at once)"
    )
    _project_arguments(migrate)
    migrate.set_defaults(handler=_migrate)
    _apikey_commands(commands)
    _image_commands(commands)
    _license_commands(commands)
    add_control_plane_commands(commands)
    add_listener_command(commands)
    add_backup_commands(commands, _project_arguments)
    add_doctor_command(commands, _project_arguments)
    return parser


def _license_commands(commands: Any) -> None:
    from stead.controlplane.settings import DEFAULT_DATA_DIR

    license_ = commands.add_parser("license", help="enrollment keys for data planes")
    actions = license_.add_subparsers(dest="license_command", required=True)
    issue = actions.add_parser("issue", help="issue a key signed by this control plane")
    issue.add_argument("--subject", required=True, help="who the key is for")
    issue.add_argument("--scope", required=True, help="what it allows: data-plane")
    issue.add_argument("--expires", default=None, help="ISO-8601 date or time (UTC if no zone)")
    issue.set_defaults(handler=_license_issue)
    verify = actions.add_parser("verify", help="say what a key holds, or why it is refused")
    verify.add_argument("key")
    verify.add_argument("--public-key", default=None, help="PEM file of the control plane's key")
    verify.set_defaults(handler=_license_verify)
    for action in (issue, verify):
        action.add_argument(
            "--data-dir",
            type=Path,
            default=DEFAULT_DATA_DIR,
            help=f"the control plane's data folder (default: {DEFAULT_DATA_DIR})",
        )


def _image_commands(commands: Any) -> None:
    health = commands.add_parser(
        "healthcheck", help="exit 0 when the server (or worker probe) answers /ok: for HEALTHCHECK"
    )
    health.add_argument("--host", default="127.0.0.1")
    health.add_argument(
        "--port", type=int, default=_default_port(), help="default: $PORT, else 8000"
    )
    health.add_argument(
        "--listener",
        type=Path,
        default=None,
        metavar="DATA_DIR",
        help="check a listener instead: its loop turned within the last 2 minutes",
    )
    health.set_defaults(handler=_healthcheck)
    dockerfile = commands.add_parser(
        "dockerfile", help="write the Dockerfile of an image of this project"
    )
    _config_argument(dockerfile)
    dockerfile.add_argument(
        "out",
        nargs="?",
        default=None,
        help="where to write it (default: Dockerfile beside the config; - for stdout)",
    )
    dockerfile.add_argument("--base-image", default=None, help="default: stead:<version>")
    dockerfile.set_defaults(handler=_dockerfile)
    build = commands.add_parser(
        "build", help="build an image of this project with the local docker engine"
    )
    _config_argument(build)
    build.add_argument("-t", "--tag", required=True, help="the image's name[:tag]")
    build.add_argument("--base-image", default=None, help="default: stead:<version>")
    build.add_argument(
        "docker_options", nargs=argparse.REMAINDER, help="after --: options for docker build"
    )
    build.set_defaults(handler=_build)


def _apikey_commands(commands: Any) -> None:
    apikey = commands.add_parser("apikey", help="manage the built-in API keys (auth.api_keys)")
    actions = apikey.add_subparsers(dest="apikey_command", required=True)
    create = actions.add_parser("create", help="create a key and print it (shown only once)")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.set_defaults(handler=_apikey_create)
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(handler=_apikey_list)
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id", help="the key's id, from 'stead apikey list'")
    revoke.set_defaults(handler=_apikey_revoke)
    for action in (create, listing, revoke):
        _project_arguments(action)


def _project_arguments(command: argparse.ArgumentParser) -> None:
    _config_argument(command)
    command.add_argument(
        "--data-dir",
        default=os.environ.get("STEAD_DATA_DIR") or None,
        help="data folder (default: $STEAD_DATA_DIR, else .stead/ beside the config)",
    )


def _config_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "-c",
        "--config",
        default=os.environ.get("STEAD_CONFIG") or "langgraph.json",
        help="path of langgraph.json (default: $STEAD_CONFIG, else langgraph.json)",
    )


def _default_port() -> int:
    """$PORT, as container platforms set it; the worker's probe keeps its own default."""
    value = os.environ.get("PORT") or "8000"
    if not value.isdigit():
        raise ConfigError(f"PORT must be a port number, got {value!r}")
    return int(value)


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, data_dir=args.data_dir, host=args.host, port=args.port)
    configure_logging(settings.log_level, settings.log_json)
    configure_tracing(settings.tracing)
    specs = load_graph_specs(settings)
    _require_current_schema(settings)
    _register_with_control_plane(settings)
    sockets = [bind_socket(settings.host, settings.port, reuse_port=args.reuse_port)]
    if args.probe_port is not None:
        sockets.append(bind_socket(settings.host, args.probe_port))
    from stead.app import create_app

    app = create_app(settings, specs)
    logging.getLogger("stead").info(
        "serving %d graph(s) on http://%s:%d", len(specs), settings.host, settings.port
    )
    return _serve(app, settings, sockets)


def _worker(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, data_dir=args.data_dir, host=args.host, port=args.port)
    if settings.n_jobs_per_worker < 1:
        raise ConfigError("stead worker needs N_JOBS_PER_WORKER of at least 1")
    configure_logging(settings.log_level, settings.log_json)
    configure_tracing(settings.tracing)
    specs = load_graph_specs(settings)
    _require_current_schema(settings)
    sock = bind_socket(settings.host, settings.port)
    from stead.worker.probe import create_worker_app

    app = create_worker_app(settings, specs)
    logging.getLogger("stead").info(
        "worker executing up to %d run(s) at once; probe on http://%s:%d/ok",
        settings.n_jobs_per_worker,
        settings.host,
        settings.port,
    )
    return _serve(app, settings, [sock])


def _check(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    specs = load_graph_specs(settings)
    print(f"{len(specs)} graph(s) load: {', '.join(specs)}")
    return 0


def _migrate(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, data_dir=args.data_dir)
    configure_logging(settings.log_level, settings.log_json)
    from stead.storage.backends import migrate

    asyncio.run(migrate(settings))
    logging.getLogger("stead").info("database schema is up to date")
    return 0


def _apikey_create(args: argparse.Namespace) -> int:
    key = _with_api_keys(args, lambda keys: keys.create(args.name))
    print(key.secret)
    print(f"key {key.key_id} ({key.name}) created; it is not shown again", file=sys.stderr)
    return 0


def _apikey_list(args: argparse.Namespace) -> int:
    for key in _with_api_keys(args, lambda keys: keys.list()):
        state = f"revoked {key['revoked_at']:%Y-%m-%d %H:%M}" if key["revoked_at"] else "active"
        print(f"{key['key_id']}  {key['prefix']}…  {key['name']}  {state}")
    return 0


def _apikey_revoke(args: argparse.Namespace) -> int:
    if not _with_api_keys(args, lambda keys: keys.revoke(args.key_id)):
        raise ConfigError(f"no active API key with id {args.key_id}")
    print(f"key {args.key_id} revoked", file=sys.stderr)
    return 0


def _with_api_keys(args: argparse.Namespace, action: Callable[[Any], Awaitable[Any]]) -> Any:
    settings = load_settings(args.config, data_dir=args.data_dir)
    from stead.auth.api_keys import ApiKeys
    from stead.storage import Database
    from stead.storage.backends import prepare_schema

    async def with_database() -> Any:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url)
        try:
            await prepare_schema(settings, db)
            return await action(ApiKeys(db))
        finally:
            await db.close()

    return asyncio.run(with_database())


def _healthcheck(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    if args.listener is not None:
        return _listener_healthcheck(args.listener)

    url = f"http://{args.host}:{args.port}/ok"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        print(f"stead: unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"stead: unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


def _listener_healthcheck(data_dir: Path) -> int:
    import time

    from stead.listener.reconciler import ALIVE_FILE

    alive = data_dir / ALIVE_FILE
    if not alive.exists():
        print(f"stead: unhealthy: no listener has run in {data_dir}", file=sys.stderr)
        return 1
    age = time.time() - alive.stat().st_mtime
    if age > _LISTENER_STALE_SECONDS:
        print(f"stead: unhealthy: the listener's loop last turned {age:.0f} s ago", file=sys.stderr)
        return 1
    return 0


_LISTENER_STALE_SECONDS = 120


def _dockerfile(args: argparse.Namespace) -> int:
    from stead.images.dockerfile import HEADER

    project, text = _project_dockerfile(args)
    if args.out == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.out) if args.out else project.directory / "Dockerfile"
    if out.exists() and not out.read_text(errors="replace").startswith(HEADER):
        raise ConfigError(
            f"{out} exists and was not written by stead dockerfile; name another file"
        )
    out.write_text(text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _build(args: argparse.Namespace) -> int:
    from stead.images.build import build_image

    project, text = _project_dockerfile(args)
    options = args.docker_options[1:] if args.docker_options[:1] == ["--"] else args.docker_options
    build_image(project.directory, text, args.tag, options)
    print(f"built {args.tag}", file=sys.stderr)
    return 0


def _project_dockerfile(args: argparse.Namespace) -> tuple[Any, str]:
    from stead.images.dockerfile import DEFAULT_BASE_IMAGE, render_dockerfile
    from stead.images.project import read_image_project

    project = read_image_project(args.config)
    return project, render_dockerfile(project, args.base_image or DEFAULT_BASE_IMAGE)


def _license_issue(args: argparse.Namespace) -> int:
    from stead.controlplane.signing import signing_key
    from stead.licenses import issue_license

    expires = _utc_moment(args.expires) if args.expires else None
    key = issue_license(signing_key(args.data_dir), args.subject, args.scope, expires)
    until = f"until {expires:%Y-%m-%dT%H:%M:%SZ}" if expires else "with no expiry"
    print(f"key for {args.subject} ({args.scope}), {until}:", file=sys.stderr)
    print(key)
    return 0


def _license_verify(args: argparse.Namespace) -> int:
    from stead.controlplane.signing import load_public_key, public_key
    from stead.licenses import verify_license

    key = load_public_key(Path(args.public_key)) if args.public_key else public_key(args.data_dir)
    found = verify_license(args.key, key)
    expires = f"{found.expires_at:%Y-%m-%dT%H:%M:%SZ}" if found.expires_at else "never"
    print(
        f"valid: subject {found.subject}, scope {found.scope}, "
        f"issued {found.issued_at:%Y-%m-%dT%H:%M:%SZ}, expires {expires}"
    )
    return 0


def _utc_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--expires must be an ISO-8601 date or time, got {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _register_with_control_plane(settings: Settings) -> None:
    """With DEPLOYMENT_TYPE=self_hosted_data_plane: a key the control plane refuses stops here."""
    from stead.services.control_plane_report import reporter_for

    reporter = reporter_for(settings)
    if reporter is not None:
        asyncio.run(reporter.register())


def _require_current_schema(settings: Settings) -> None:
    """On PostgreSQL, `stead migrate` owns the schema: refuse to serve on one that is behind."""
    if settings.postgres_uri is None:
        return
    from stead.storage.backends import check_schema

    asyncio.run(check_schema(settings))


def _serve(app: Any, settings: Settings, sockets: list[socket.socket]) -> int:
    return_large_blocks_to_the_system()
    hand_the_gil_over_sooner()
    config = uvicorn.Config(
        app,
        http=HttpProtocol,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
    )
    logging.getLogger("uvicorn.error").addFilter(CutShortLogFilter())
    _Server(config).run(sockets=sockets)
    return 0


class _Server(uvicorn.Server):
    """Uvicorn, with long-lived responses ended as soon as it stops listening (it waits for open
    connections before the lifespan hands runs back to the queue), and a second stop signal
    ending the process at once."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Uvicorn re-raises the stop signal after shutting down; a clean stop should exit 0.
        with super().capture_signals():
            try:
                yield
            finally:
                self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        freeze_startup_objects()
        collect_young_objects_less_often()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit:
            _exit_now(sig)
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        logging.getLogger("stead").info(
            "stopping: open streams end now (a second Ctrl+C or SIGTERM exits at once)"
        )
        server_shutdown.begin()
        await super().shutdown(sockets)


def _exit_now(sig: int) -> NoReturn:
    """Leave without waiting for anything: runs still in progress are left to the lease reaper,
    as after a crash (threads running graph code would keep a normal exit waiting)."""
    logging.getLogger("stead").warning(
        "%s during shutdown: exiting now; runs in progress resume once their lease expires",
        signal.Signals(sig).name,
    )
    os._exit(128 + sig)
