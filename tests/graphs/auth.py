"""Custom auth written the way the LangGraph docs show: bearer tokens, owners stamped on what
users create, owner filters on everything else, admins unrestricted, store namespaces scoped."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

USERS: dict[str, dict[str, Any]] = {
    "alice-token": {"identity": "alice", "permissions": ["write"], "org_id": "acme"},
    "bob-token": {"identity": "bob", "permissions": ["write"], "org_id": "globex"},
    "admin-token": {"identity": "admin", "permissions": ["admin"], "org_id": "acme"},
}


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    if not authorization or not authorization.startswith("Bearer "):
        raise Auth.exceptions.HTTPException(status_code=401, detail="Missing bearer token")
    user = USERS.get(authorization.removeprefix("Bearer "))
    if user is None:
        raise Auth.exceptions.HTTPException(status_code=401, detail="Invalid token")
    return user  # type: ignore[return-value]


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Any:
    if "admin" in ctx.user.permissions:
        return None
    filters = {"owner": ctx.user.identity}
    metadata = value.setdefault("metadata", {})
    if metadata is None:
        metadata = value["metadata"] = {}
    metadata.update(filters)
    return filters


@auth.on.assistants.delete
async def only_admins_delete_assistants(ctx: Auth.types.AuthContext, value: Any) -> bool:
    return "admin" in ctx.user.permissions


@auth.on.crons.delete
async def only_admins_delete_crons(ctx: Auth.types.AuthContext, value: Any) -> None:
    if "admin" not in ctx.user.permissions:
        raise Auth.exceptions.HTTPException(status_code=403, detail="Only admins delete crons")


@auth.on.store()
async def own_namespace(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> None:
    if "admin" in ctx.user.permissions:
        return
    namespace = tuple(value.get("namespace") or ())
    value["namespace"] = (ctx.user.identity, *namespace)
