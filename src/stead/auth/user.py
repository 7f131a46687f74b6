"""The authenticated user as handlers and graphs see it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Keys every user has; anything else an authenticate handler returns is kept beside them.
_BASE_KEYS = ("identity", "display_name", "is_authenticated", "permissions")


class AuthUser(dict[str, Any]):
    """A user that reads both ways, `user.identity` and `user["identity"]`, as the official
    server's does; a dict underneath, so it travels in a run's JSON config unchanged."""

    @property
    def identity(self) -> str:
        return str(self["identity"])

    @property
    def display_name(self) -> str:
        return str(self.get("display_name") or self["identity"])

    @property
    def is_authenticated(self) -> bool:
        return bool(self.get("is_authenticated", True))

    @property
    def permissions(self) -> Sequence[str]:
        return list(self.get("permissions") or [])

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def normalize_user(result: Any) -> AuthUser:
    """What an authenticate handler may return: an identity string, a dict with `identity`,
    or an object with `identity` (and maybe `permissions`, `display_name`) attributes."""
    if isinstance(result, str):
        return _user({"identity": result})
    if isinstance(result, Mapping):
        if not isinstance(result.get("identity"), str):
            raise TypeError("the user returned by @auth.authenticate needs a string 'identity'")
        return _user(dict(result))
    identity = getattr(result, "identity", None)
    if isinstance(identity, str):
        return _user({key: getattr(result, key) for key in _BASE_KEYS if hasattr(result, key)})
    raise TypeError(
        "@auth.authenticate must return an identity string, a dict with 'identity', "
        f"or a user object; got {type(result).__name__}"
    )


def _user(fields: dict[str, Any]) -> AuthUser:
    fields.setdefault("display_name", fields["identity"])
    fields.setdefault("is_authenticated", True)
    fields["permissions"] = list(fields.get("permissions") or [])
    return AuthUser(fields)


def run_configurable(user: AuthUser) -> dict[str, Any]:
    """What a run's graph finds in `config["configurable"]` about who started it."""
    return {
        "langgraph_auth_user": dict(user),
        "langgraph_auth_user_id": user.identity,
        "langgraph_auth_permissions": list(user.permissions),
    }


def run_user(configurable: Mapping[str, Any]) -> AuthUser | None:
    """Who started a run, read back from what `run_configurable` put in its config."""
    user = configurable.get("langgraph_auth_user")
    return AuthUser(user) if user else None
