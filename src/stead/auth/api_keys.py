"""Built-in API keys: created and revoked with `stead apikey`, sent as `x-api-key`.

Keys are 256 random bits, so a plain SHA-256 is enough to keep them unreadable at rest (a slow
password hash protects guessable secrets; these are not) and lets a request find its key by hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from stead.auth.user import AuthUser
from stead.ids import new_random_id
from stead.services.assistants import now_utc
from stead.storage import Database

KEY_PREFIX = "stead_"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    name: str
    secret: str


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, name: str) -> NewKey:
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = new_random_id()
        async with self._db.transaction() as tx:
            await tx.api_keys.insert(
                {
                    "key_id": key_id,
                    "name": name,
                    "key_hash": _hash(secret),
                    "prefix": secret[: len(KEY_PREFIX) + 4],
                    "created_at": now_utc(),
                    "revoked_at": None,
                }
            )
        return NewKey(key_id, name, secret)

    async def list(self) -> list[dict[str, Any]]:
        async with self._db.transaction() as tx:
            keys = await tx.api_keys.list()
        return [{k: v for k, v in key.items() if k != "key_hash"} for key in keys]

    async def revoke(self, key_id: str) -> bool:
        async with self._db.transaction() as tx:
            return await tx.api_keys.revoke(key_id, now_utc())

    async def user_for(self, secret: str) -> AuthUser | None:
        """The user a valid, unrevoked key stands for; None for anything else."""
        async with self._db.transaction() as tx:
            key = await tx.api_keys.find_active(_hash(secret))
        if key is None:
            return None
        return AuthUser(
            identity=f"apikey:{key['name']}",
            display_name=key["name"],
            is_authenticated=True,
            permissions=[],
            api_key_id=key["key_id"],
        )


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
