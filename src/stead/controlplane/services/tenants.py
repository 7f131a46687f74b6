"""Tenants (workspaces) and their API keys: `stead control-plane apikey`, sent as `X-Api-Key`.

Keys are 256 random bits, so a SHA-256 keeps them unreadable at rest and lets a request find its
key by hash (as the server's own keys, stead.auth.api_keys)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from stead.controlplane.storage import ControlPlaneDatabase
from stead.errors import AuthError
from stead.ids import new_random_id
from stead.services.assistants import now_utc

KEY_PREFIX = "steadcp_"


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str


@dataclass(frozen=True)
class NewTenantKey:
    key_id: str
    tenant: Tenant
    secret: str


class TenantKeys:
    def __init__(self, db: ControlPlaneDatabase) -> None:
        self._db = db

    async def create(self, tenant_name: str, key_name: str) -> NewTenantKey:
        """A key for `tenant_name`, creating the tenant on first use."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = new_random_id()
        async with self._db.transaction() as tx:
            found = await tx.tenants.find(tenant_name)
            if found is None:
                found = {"id": new_random_id(), "name": tenant_name, "created_at": now_utc()}
                await tx.tenants.insert(found)
            await tx.tenants.insert_key(
                {
                    "key_id": key_id,
                    "tenant_id": found["id"],
                    "name": key_name,
                    "key_hash": key_hash(secret),
                    "prefix": secret[: len(KEY_PREFIX) + 4],
                    "created_at": now_utc(),
                    "revoked_at": None,
                }
            )
        return NewTenantKey(key_id, Tenant(found["id"], found["name"]), secret)

    async def list(self) -> list[dict[str, Any]]:
        async with self._db.transaction() as tx:
            keys = await tx.tenants.list_keys()
        return [{k: v for k, v in key.items() if k != "key_hash"} for key in keys]

    async def revoke(self, key_id: str) -> bool:
        async with self._db.transaction() as tx:
            return await tx.tenants.revoke_key(key_id, now_utc())

    async def tenant_for(self, secret: str | None, tenant_header: str | None) -> Tenant:
        """The tenant a request acts in: its key's. A named tenant must be that one."""
        if not secret:
            raise AuthError(401, "Missing X-Api-Key header.")
        async with self._db.transaction() as tx:
            key = await tx.tenants.find_active_key(key_hash(secret))
            tenant = await tx.tenants.find(key["tenant_id"]) if key else None
        if key is None or tenant is None:
            raise AuthError(401, "Invalid API key.")
        if tenant_header and tenant_header not in (tenant["id"], tenant["name"]):
            raise AuthError(403, "This API key does not belong to the workspace in X-Tenant-Id.")
        return Tenant(tenant["id"], tenant["name"])


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
