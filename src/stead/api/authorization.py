"""What routes ask the auth handlers before they act, and the access the answer leaves them.

Each helper checks the ids first (a malformed one is 422 before any handler runs), then builds
the value the handler for `resource.action` receives, as `langgraph_sdk.Auth.types` names it.
"""

from __future__ import annotations

from typing import Any

from stead.api.deps import require_uuid
from stead.auth.policy import Authorizer
from stead.services.assistants import AssistantService
from stead.storage.access import UNRESTRICTED, Access


async def on_thread(
    authz: Authorizer,
    action: str,
    thread_id: str,
    run_id: str | None = None,
    cancel: str | None = None,
) -> Access:
    """`threads.<action>` on a thread or one of its runs; a cancel tells the handler its kind as
    the value's `action`."""
    require_uuid(thread_id, "thread")
    if run_id is not None:
        require_uuid(run_id, "run")
    value: dict[str, Any] = {"thread_id": thread_id, "run_id": run_id, "metadata": {}}
    value["action"] = cancel
    return await authz.check("threads", action, value)


async def on_assistant(authz: Authorizer, action: str, assistant_id: str) -> Access:
    require_uuid(assistant_id, "assistant")
    value = {"assistant_id": assistant_id, "metadata": {}}
    return await authz.check("assistants", action, value)


async def on_cron(
    authz: Authorizer, action: str, cron_id: str, changes: dict[str, Any] | None = None
) -> Access:
    require_uuid(cron_id, "cron")
    return await authz.check("crons", action, {"cron_id": cron_id, **(changes or {})})


async def using_assistant(
    authz: Authorizer,
    assistants: AssistantService,
    assistant: str,
    within: Access = UNRESTRICTED,
) -> Access:
    """What running `assistant` (an id or a graph name) needs: `assistants.read` on an assistant
    a user created. The graphs' own assistants belong to every user, as on the official server."""
    assistant_id = assistants.resolve_id(assistant)
    if assistant_id is None or assistants.is_system(assistant_id):
        return within
    read = {"assistant_id": assistant_id, "metadata": {}}
    return await authz.check("assistants", "read", read, within=within)
