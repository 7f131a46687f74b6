"""Deployment secrets: encrypted at rest with the key in STEAD_ENCRYPTION_KEY (Fernet: AES-128-CBC
with an HMAC, from `cryptography`), returned masked, handed decrypted only to the listener that
runs the deployment."""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from stead.config import ConfigError
from stead.controlplane.storage import ControlPlaneDatabase
from stead.errors import BadRequest

ENCRYPTION_KEY_VARIABLE = "STEAD_ENCRYPTION_KEY"
MASK = "********"

# Names the control plane sets itself; `langgraph deploy` skips them and the API refuses them.
# The list is the official CLI's RESERVED_ENV_VARS.
RESERVED_NAMES = frozenset(
    [
        "LANGCHAIN_TRACING_V2",
        "LANGSMITH_TRACING_V2",
        "LANGCHAIN_ENDPOINT",
        "LANGCHAIN_PROJECT",
        "LANGSMITH_PROJECT",
        "LANGSMITH_LANGGRAPH_GIT_REPO",
        "LANGGRAPH_GIT_REPO_PATH",
        "LANGCHAIN_API_KEY",
        "LANGSMITH_CONTROL_PLANE_API_KEY",
        "POSTGRES_URI",
        "POSTGRES_PASSWORD",
        "DATABASE_URI",
        "LANGSMITH_LANGGRAPH_GIT_REF",
        "LANGSMITH_LANGGRAPH_GIT_REF_SHA",
        "LANGGRAPH_AUTH_TYPE",
        "LANGSMITH_AUTH_ENDPOINT",
        "LANGSMITH_TENANT_ID",
        "LANGSMITH_AUTH_VERIFY_TENANT_ID",
        "LANGSMITH_HOST_PROJECT_ID",
        "LANGSMITH_HOST_PROJECT_NAME",
        "LANGSMITH_HOST_REVISION_ID",
        "LOG_JSON",
        "LOG_DICT_TRACEBACKS",
        "REDIS_URI",
        "LANGCHAIN_CALLBACKS_BACKGROUND",
        "DD_TRACE_PSYCOPG_ENABLED",
        "DD_TRACE_REDIS_ENABLED",
        "LANGSMITH_DEPLOYMENT_NAME",
        "LANGGRAPH_CLOUD_LICENSE_KEY",
        "LANGSMITH_API_KEY",
        "LANGSMITH_ENDPOINT",
        "POSTGRES_URI_CUSTOM",
        "REDIS_URI_CUSTOM",
        "PATH",
        "PORT",
        "MOUNT_PREFIX",
        "LSD_ENV",
        "LSD_DD_API_KEY",
        "LSD_DD_ENDPOINT",
        "LSD_DEPLOYMENT_TYPE",
    ]
)
# Of those, the ones a self-hosted deployment may set: its own database, Redis and tracing.
ALLOWED_SELF_HOSTED = frozenset(
    ("LANGSMITH_API_KEY", "LANGSMITH_ENDPOINT", "POSTGRES_URI_CUSTOM", "REDIS_URI_CUSTOM")
)


class SecretBox:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    @classmethod
    def from_environment(cls, environ: dict[str, str]) -> SecretBox:
        key = environ.get(ENCRYPTION_KEY_VARIABLE)
        if not key:
            raise ConfigError(
                f"{ENCRYPTION_KEY_VARIABLE} is not set; the control plane never stores secrets "
                "in plaintext (make one: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            )
        try:
            return cls(key)
        except ValueError:
            raise ConfigError(
                f"{ENCRYPTION_KEY_VARIABLE} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None

    def seal(self, secrets: list[dict[str, str]]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def open(self, sealed: str) -> list[dict[str, str]]:
        try:
            return list(json.loads(self._fernet.decrypt(sealed.encode())))
        except InvalidToken:
            raise ConfigError(
                f"stored secrets do not decrypt with this {ENCRYPTION_KEY_VARIABLE}; "
                "it is not the key they were written with"
            ) from None


def validate_secrets(secrets: list[dict[str, Any]]) -> list[dict[str, str]]:
    seen: set[str] = set()
    for secret in secrets:
        name = secret["name"]
        if name in RESERVED_NAMES and name not in ALLOWED_SELF_HOSTED:
            raise BadRequest(f"Secret name {name} is reserved and cannot be set.")
        if name in seen:
            raise BadRequest(f"Secret name {name} is given twice.")
        seen.add(name)
    return [{"name": s["name"], "value": s["value"]} for s in secrets]


def masked(secrets: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"name": secret["name"], "value": MASK} for secret in secrets]


async def require_key_opens_stored_secrets(db: ControlPlaneDatabase, box: SecretBox) -> None:
    """Refuse to start with a key other than the one the stored secrets were sealed with, rather
    than fail every later request that reads them."""
    async with db.transaction() as tx:
        sealed = await tx.deployments.any_sealed_secrets()
    if sealed is not None:
        box.open(sealed)
