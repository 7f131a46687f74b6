"""`stead control-plane`: serve the control plane, and manage its tenants' API keys."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stead.config import ConfigError
from stead.controlplane.settings import (
    DEFAULT_DATA_DIR,
    DEFAULT_PORT,
    ControlPlaneSettings,
    load_control_plane_settings,
)


def add_control_plane_commands(commands: Any) -> None:
    serve = commands.add_parser(
        "control-plane", help="serve the control plane (deployments, revisions, listeners)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default: {DEFAULT_PORT}")
    _data_dir_argument(serve)
    serve.set_defaults(handler=_serve)
    actions = serve.add_subparsers(dest="control_plane_command")
    apikey = actions.add_parser("apikey", help="API keys of the control plane's workspaces")
    key_actions = apikey.add_subparsers(dest="apikey_command", required=True)
    create = key_actions.add_parser(
        "create", help="create a key (and its workspace if new) and print it (shown only once)"
    )
    create.add_argument("--tenant", required=True, help="the workspace the key acts in")
    create.add_argument("--name", default="default", help="who or what the key is for")
    create.set_defaults(handler=_apikey_create)
    listing = key_actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(handler=_apikey_list)
    revoke = key_actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id", help="the key's id, from 'stead control-plane apikey list'")
    revoke.set_defaults(handler=_apikey_revoke)
    for action in (create, listing, revoke):
        _data_dir_argument(action)


def _data_dir_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("STEAD_CONTROL_PLANE_DATA_DIR") or DEFAULT_DATA_DIR),
        help=f"data folder (default: $STEAD_CONTROL_PLANE_DATA_DIR, else {DEFAULT_DATA_DIR})",
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from stead.controlplane.api.app import create_control_plane_app
    from stead.controlplane.services.container import ControlPlaneServices
    from stead.controlplane.services.secrets import SecretBox, require_key_opens_stored_secrets
    from stead.observability.logs import configure_logging
    from stead.sockets import bind_socket

    settings = load_control_plane_settings(args.data_dir, args.host, args.port)
    box = SecretBox.from_environment(dict(os.environ))
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper(), False)
    _with_database(settings, lambda db: require_key_opens_stored_secrets(db, box))
    sock = bind_socket(settings.host, settings.port)
    app = create_control_plane_app(ControlPlaneServices.build(settings, box))
    logging.getLogger("stead").info(
        "control plane on http://%s:%d (also under /api-host)", settings.host, settings.port
    )
    uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False)).run(sockets=[sock])
    return 0


def _apikey_create(args: argparse.Namespace) -> int:
    key = _with_keys(args, lambda keys: keys.create(args.tenant, args.name))
    print(
        f"key {key.key_id} ({args.name}) for workspace {key.tenant.name} ({key.tenant.id}) "
        "created; it is not shown again",
        file=sys.stderr,
    )
    print(key.secret)
    return 0


def _apikey_list(args: argparse.Namespace) -> int:
    for key in _with_keys(args, lambda keys: keys.list()):
        state = f"revoked {key['revoked_at']:%Y-%m-%d %H:%M}" if key["revoked_at"] else "active"
        print(f"{key['key_id']}  {key['prefix']}…  {key['tenant_name']}  {key['name']}  {state}")
    return 0


def _apikey_revoke(args: argparse.Namespace) -> int:
    if not _with_keys(args, lambda keys: keys.revoke(args.key_id)):
        raise ConfigError(f"no active API key with id {args.key_id}")
    print(f"key {args.key_id} revoked", file=sys.stderr)
    return 0


def _with_keys(args: argparse.Namespace, action: Callable[[Any], Awaitable[Any]]) -> Any:
    from stead.controlplane.services.tenants import TenantKeys

    settings = load_control_plane_settings(args.data_dir)
    return _with_database(settings, lambda db: action(TenantKeys(db)))


def _with_database(settings: ControlPlaneSettings, action: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `action` on the migrated database, outside the server's event loop."""
    from stead.controlplane.storage import ControlPlaneDatabase

    async def with_database() -> Any:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = ControlPlaneDatabase(settings.database_url)
        try:
            await db.migrate()
            return await action(db)
        finally:
            await db.close()

    return asyncio.run(with_database())
