"""Crons: a run body (the payload) started on a schedule, on a thread or each time on a new one."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from stead.auth.user import AuthUser
from stead.errors import BadRequest, NotFound, Unprocessable
from stead.ids import new_time_ordered_id
from stead.services.assistants import AssistantService, merge_config_and_context, now_utc
from stead.services.runs import RunRequest, RunService
from stead.storage import Database, Page
from stead.storage.access import UNRESTRICTED, Access

# How many due crons one scheduler tick claims; the rest wait for the next tick.
_CLAIM_BATCH = 100
# PATCH fields that cannot be null: a null there leaves them as they are.
_NOT_NULL = ("schedule", "enabled", "on_run_completed", "metadata")


class CronService:
    def __init__(self, db: Database, assistants: AssistantService, runs: RunService) -> None:
        self._db = db
        self._assistants = assistants
        self._runs = runs

    async def create(
        self,
        thread_id: str | None,
        body: dict[str, Any],
        *,
        auth_user: AuthUser | None = None,
        access: Access = UNRESTRICTED,
    ) -> dict[str, Any]:
        """`body` holds the fields the client sent; they become the payload of every run, which
        executes as `auth_user`. `access` keeps the thread and assistant to visible ones."""
        now = now_utc()
        next_run_date = next_run_after(body["schedule"], body.get("timezone"), now)
        _check_run_settings(body.get("config"), body.get("context"))
        if body.get("webhook"):
            await self._runs.check_webhook(body["webhook"])
        assistant = await self._assistants.resolve(body["assistant_id"], access)
        cron_id = new_time_ordered_id()
        end_time = _as_utc(body.get("end_time"))
        payload = {**body, "assistant_id": assistant["assistant_id"]}
        payload["config"] = _with_cron_id(body.get("config"), cron_id)
        if end_time is not None:
            payload["end_time"] = end_time
        record = {
            "cron_id": cron_id,
            "assistant_id": assistant["assistant_id"],
            "thread_id": thread_id,
            "user_id": auth_user.identity if auth_user else "",
            "auth_user": dict(auth_user) if auth_user else None,
            "schedule": body["schedule"],
            "timezone": body.get("timezone"),
            "payload": payload,
            "metadata": body.get("metadata") or {},
            "end_time": end_time,
            "next_run_date": next_run_date,
            # A thread cron's runs stay on its thread; only stateless crons choose.
            "on_run_completed": None if thread_id else body.get("on_run_completed", "delete"),
            "enabled": body.get("enabled", True),
            "created_at": now,
            "updated_at": now,
        }
        async with self._db.transaction(access) as tx:
            if thread_id is not None and await tx.threads.get(thread_id) is None:
                raise NotFound(f"Thread with ID {thread_id} not found")
            await tx.crons.insert(record)
        return record

    async def get(self, cron_id: str, access: Access = UNRESTRICTED) -> dict[str, Any]:
        async with self._db.autocommit(access) as tx:
            found = await tx.crons.get(cron_id)
        if found is None:
            raise NotFound(f"Cron with ID {cron_id} not found")
        return found

    async def patch(
        self, cron_id: str, changes: dict[str, Any], access: Access = UNRESTRICTED
    ) -> dict[str, Any]:
        changes = {k: v for k, v in changes.items() if v is not None or k not in _NOT_NULL}
        if not changes:
            raise BadRequest("Request body cannot be empty")
        async with self._db.transaction(access) as tx:
            current = await tx.crons.get(cron_id)
            if current is None:
                raise NotFound(f"Cron with ID {cron_id} not found")
            fields = _patched_fields(current, changes, now_utc())
            await tx.crons.update(cron_id, **fields)
        return {**current, **fields}

    async def delete(self, cron_id: str, access: Access = UNRESTRICTED) -> None:
        async with self._db.transaction(access) as tx:
            if not await tx.crons.delete(cron_id):
                raise NotFound(f"Cron with ID {cron_id} not found")

    async def search(
        self, *, assistant_id: str | None, access: Access = UNRESTRICTED, **filters: Any
    ) -> Page:
        async with self._db.autocommit(access) as tx:
            return await tx.crons.search(
                assistant_id=self._assistant_filter(assistant_id), **filters
            )

    async def count(
        self, *, assistant_id: str | None, access: Access = UNRESTRICTED, **filters: Any
    ) -> int:
        async with self._db.autocommit(access) as tx:
            return await tx.crons.count(
                assistant_id=self._assistant_filter(assistant_id), **filters
            )

    async def claim_due(self, now: datetime) -> list[dict[str, Any]]:
        """The due crons this caller won, each already moved on to its next run date.

        The move is a compare-and-set on next_run_date, so of two schedulers (or a scheduler
        before and after a restart) exactly one claims a given due time.
        """
        claimed = []
        async with self._db.transaction() as tx:
            for cron in await tx.crons.due(now, _CLAIM_BATCH):
                next_run_date = next_run_after(cron["schedule"], cron["timezone"], now)
                if await tx.crons.advance(cron["cron_id"], cron["next_run_date"], next_run_date):
                    claimed.append(cron)
        return claimed

    async def start_run(self, cron: dict[str, Any]) -> dict[str, Any]:
        """Queue the cron's run through the same path as a run created over the API."""
        return await self._runs.create(cron["thread_id"], _run_request(cron))

    def _assistant_filter(self, assistant_id: str | None) -> str | None:
        if assistant_id is None:
            return None
        resolved = self._assistants.resolve_id(assistant_id)
        if resolved is None:
            raise Unprocessable("Invalid assistant ID: must be a UUID")
        return resolved


def next_run_after(schedule: str, timezone: str | None, moment: datetime) -> datetime:
    """The first time after `moment` that `schedule` names, read in `timezone` (UTC if None)."""
    # Imported when a schedule is first read: with dateutil, 0.5 MiB resident that a server
    # without crons does not hold.
    from croniter import croniter

    zone = _zone(timezone)
    try:
        local = croniter(schedule, moment.astimezone(zone)).get_next(datetime)
    except ValueError as exc:
        raise Unprocessable(
            f"Invalid cron schedule: {schedule!r}. Use five fields (minute hour day-of-month "
            "month day-of-week), optionally a sixth for seconds, e.g. '*/5 * * * *'."
        ) from exc
    return local.astimezone(UTC)


def _zone(name: str | None) -> tzinfo:
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise Unprocessable(
            f"Invalid timezone: {name!r}. Use an IANA name such as 'America/New_York'."
        ) from exc


def _as_utc(moment: datetime | None) -> datetime | None:
    """End times without an offset are read as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_run_settings(config: dict[str, Any] | None, context: dict[str, Any] | None) -> None:
    """Refuse config.configurable with context now rather than at every firing."""
    merge_config_and_context(_without_cron_id(config), context)


def _without_cron_id(config: dict[str, Any] | None) -> dict[str, Any]:
    config = dict(config or {})
    configurable = {k: v for k, v in (config.get("configurable") or {}).items() if k != "cron_id"}
    return {**config, "configurable": configurable}


def _with_cron_id(config: dict[str, Any] | None, cron_id: str) -> dict[str, Any]:
    config = dict(config or {})
    return {**config, "configurable": {**(config.get("configurable") or {}), "cron_id": cron_id}}


def _patched_fields(
    current: dict[str, Any], changes: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """The columns a PATCH changes; the payload takes every changed field, as on create."""
    payload = {**current["payload"], **changes}
    fields: dict[str, Any] = {"payload": payload, "updated_at": now}
    if "metadata" in changes:
        fields["metadata"] = payload["metadata"] = {**current["metadata"], **changes["metadata"]}
    if "config" in changes or "context" in changes:
        _check_run_settings(payload.get("config"), payload.get("context"))
        payload["config"] = _with_cron_id(payload.get("config"), current["cron_id"])
    if "end_time" in changes:
        fields["end_time"] = payload["end_time"] = _as_utc(changes["end_time"])
    for key in ("schedule", "timezone", "enabled"):
        if key in changes:
            fields[key] = changes[key]
    if "on_run_completed" in changes and current["thread_id"] is None:
        fields["on_run_completed"] = changes["on_run_completed"]
    # A cron switched back on starts from now instead of firing for a time it missed.
    reenabled = changes.get("enabled") is True and not current["enabled"]
    if "schedule" in changes or "timezone" in changes or reenabled:
        fields["next_run_date"] = next_run_after(
            fields.get("schedule", current["schedule"]),
            fields.get("timezone", current["timezone"]),
            now,
        )
    return fields


def _run_request(cron: dict[str, Any]) -> RunRequest:
    payload = cron["payload"]
    config = dict(payload.get("config") or {})
    # Context and configurable are one set of settings (see merge_config_and_context).
    settings = {
        **(config.get("configurable") or {}),
        **(payload.get("context") or {}),
        "cron_id": cron["cron_id"],
    }
    stream_mode = payload.get("stream_mode")
    return RunRequest(
        assistant_id=cron["assistant_id"],
        input=payload.get("input"),
        metadata=payload.get("metadata"),
        config={**config, "configurable": settings},
        interrupt_before=payload.get("interrupt_before"),
        interrupt_after=payload.get("interrupt_after"),
        webhook=payload.get("webhook"),
        stream_mode=[stream_mode] if isinstance(stream_mode, str) else stream_mode,
        stream_subgraphs=bool(payload.get("stream_subgraphs")),
        stream_resumable=bool(payload.get("stream_resumable")),
        multitask_strategy=payload.get("multitask_strategy") or "enqueue",
        on_completion=cron["on_run_completed"] or "delete",
        durability=payload.get("durability"),
        checkpoint_during=payload.get("checkpoint_during"),
        auth_user=AuthUser(cron["auth_user"]) if cron.get("auth_user") else None,
    )
