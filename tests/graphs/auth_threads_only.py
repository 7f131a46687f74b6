"""Auth that covers threads only: everything else must be refused, not opened to all."""

from __future__ import annotations

from typing import Any

from langgraph_sdk import Auth

auth = Auth()


@auth.authenticate
async def authenticate(authorization: str | None) -> str:
    return "anyone"


@auth.on.threads
async def any_thread(ctx: Auth.types.AuthContext, value: Any) -> None:
    return None
