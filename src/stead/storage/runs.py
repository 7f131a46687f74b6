"""Queries on runs. The run table is the queue."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from stead.storage._query import fetch_all, fetch_one
from stead.storage.access import visible
from stead.storage.connections import Connection
from stead.storage.dialects import Dialect
from stead.storage.prepared import prepared
from stead.storage.schema import ACTIVE_STATUSES, assistant, run, thread


def has_status(column: sa.ColumnElement[str], *statuses: str) -> sa.ColumnElement[bool]:
    """`column` is one of `statuses`, written into the SQL as literals. Bound as parameters,
    SQLite's planner reads their values to match the partial indexes on `run.status`, and then
    prepares the statement again at each execution: a claim of an empty queue took four times
    as long (bench/README.md). Not as IN: an IN list is expanded as the statement runs, which a
    prepared statement (stead.storage.prepared) cannot be."""
    return sa.or_(*(column == sa.literal_column(f"'{status}'") for status in statuses))


def is_active(status: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """`status` is one of ACTIVE_STATUSES, as `run_active_by_thread` states it."""
    return has_status(status, *ACTIVE_STATUSES)


# The queue's statements run for every run, so they are built once with bound parameters and
# prepared (stead.storage.prepared): compiled once, not rebuilt and hashed each time.
_NOW = sa.bindparam("queue_now", type_=run.c.created_at.type)
_LEASE_UNTIL = sa.bindparam("queue_lease_until", type_=run.c.lease_expires_at.type)
_LIMIT = sa.bindparam("queue_limit", type_=sa.Integer())
# The column of the claim's result that holds `_NEXT_DUE`.
_NEXT_DUE_AT = "queue_next_due_at"


@functools.cache
def _claim_statement(dialect: Dialect) -> sa.Update:
    """Up to `queue_limit` due pending runs, marked running, oldest first.

    A run is due when its thread has no running run and no older pending one: so one claim
    takes at most one run per thread, and a thread's runs start in order."""
    busy = sa.alias(run, "busy")
    older = sa.alias(run, "older")
    candidates = (
        sa.select(run.c.run_id)
        .where(
            has_status(run.c.status, "pending"),
            run.c.created_at <= _NOW,
            ~sa.exists().where(
                busy.c.thread_id == run.c.thread_id, has_status(busy.c.status, "running")
            ),
            ~sa.exists().where(
                older.c.thread_id == run.c.thread_id,
                has_status(older.c.status, "pending"),
                sa.or_(
                    older.c.created_at < run.c.created_at,
                    sa.and_(older.c.created_at == run.c.created_at, older.c.run_id < run.c.run_id),
                ),
            ),
        )
        .order_by(run.c.created_at)
        .limit(_LIMIT)
    )
    return prepared(
        sa.update(run)
        .where(run.c.run_id.in_(dialect.claim_candidates(candidates)))
        .where(has_status(run.c.status, "pending"))
        .values(
            status="running",
            attempt=run.c.attempt + 1,
            lease_expires_at=_LEASE_UNTIL,
            updated_at=_NOW,
        )
        .returning(*run.c, _NEXT_DUE.scalar_subquery().label(_NEXT_DUE_AT))
    )


# Conditions on the attempt a worker runs: `queue_run_id` at `queue_attempt`, still running.
_THIS_ATTEMPT = (
    run.c.run_id == sa.bindparam("queue_run_id"),
    run.c.attempt == sa.bindparam("queue_attempt"),
    has_status(run.c.status, "running"),
)
_RENEW_LEASE = prepared(
    sa.update(run)
    .where(*_THIS_ATTEMPT)
    .values(lease_expires_at=_LEASE_UNTIL)
    .returning(run.c.cancel_action)
)
# An attempt ends: finished with its outcome, or back to `pending` for a new attempt.
_END_ATTEMPT = prepared(
    sa.update(run)
    .where(*_THIS_ATTEMPT)
    .values(
        status=sa.bindparam("queue_status", type_=run.c.status.type),
        lease_expires_at=None,
        updated_at=_NOW,
    )
)
_DELETE_ATTEMPT = prepared(sa.delete(run).where(*_THIS_ATTEMPT))
# A stateless run's attempt ends with its run and its thread: on PostgreSQL in one call of
# `stead_end_temporary_attempt` (migration 0010), on SQLite in two statements.
_END_TEMPORARY_ATTEMPT = prepared(
    sa.select(
        sa.func.stead_end_temporary_attempt(
            sa.bindparam("queue_run_id", type_=sa.Text()),
            sa.bindparam("queue_attempt", type_=sa.Integer()),
            type_=sa.Boolean(),
        )
    )
)
# A run's attempt ends with its thread settled: on PostgreSQL in one call of `stead_end_attempt`
# (migration 0013); elsewhere `finish_attempt`, then stead.services.thread_status.settle_thread.
_ENDED = sa.func.stead_end_attempt(
    sa.bindparam("queue_run_id", type_=sa.Text()),
    sa.bindparam("queue_attempt", type_=sa.Integer()),
    sa.bindparam("queue_status", type_=sa.Text()),
    _NOW,
    sa.bindparam("end_error", type_=thread.c.error.type),
    sa.bindparam("end_sets_state", type_=sa.Boolean()),
    sa.bindparam("end_values", type_=thread.c["values"].type),
    sa.bindparam("end_interrupts", type_=thread.c.interrupts.type),
    sa.bindparam("end_when_free", type_=sa.Text()),
).table_valued(sa.column("recorded", sa.Boolean()), sa.column("thread_busy", sa.Boolean()))
_END_ATTEMPT_SETTLING_THREAD = prepared(sa.select(_ENDED.c.recorded, _ENDED.c.thread_busy))
_DELETE_ATTEMPT_OF_THREAD = prepared(
    sa.delete(run).where(*_THIS_ATTEMPT).returning(run.c.thread_id)
)
_DELETE_THREAD = prepared(sa.delete(thread).where(thread.c.thread_id == sa.bindparam("ended")))


def _attempt(run_id: str, attempt: int, **params: Any) -> dict[str, Any]:
    """Parameters of a statement on `_THIS_ATTEMPT`."""
    return {"queue_run_id": run_id, "queue_attempt": attempt, **params}


# When the earliest delayed pending run falls due. Aliased: inside the claim's RETURNING it must
# not correlate with the claimed row.
_UPCOMING = sa.alias(run, "upcoming")
_NEXT_DUE = prepared(
    sa.select(_UPCOMING.c.created_at)
    .where(has_status(_UPCOMING.c.status, "pending"), _UPCOMING.c.created_at > _NOW)
    .order_by(_UPCOMING.c.created_at)
    .limit(1)
)


# Built once, the values as parameters: the ones a run sends are prepared (stead.storage.prepared).
_INSERT = prepared(sa.insert(run))
_INSERT_THREAD = prepared(sa.insert(thread))


# The assistant a run was built from is still as it was read: its version and its update time.
# A run built from an assistant read earlier (stead.services.assistants.AssistantCache) is
# inserted only on that condition, checked by its INSERT rather than by a read before it.
_ASSISTANT_UNCHANGED = sa.exists().where(
    assistant.c.assistant_id == sa.bindparam("unchanged_assistant_id", type_=sa.String()),
    assistant.c.version == sa.bindparam("unchanged_version", type_=sa.Integer()),
    assistant.c.updated_at
    == sa.bindparam("unchanged_updated_at", type_=assistant.c.updated_at.type),
)


def _unchanged_parameters(record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "unchanged_assistant_id": record["assistant_id"],
        "unchanged_version": record["version"],
        "unchanged_updated_at": record["updated_at"],
    }


def _inserted_from(table: sa.Table, keys: tuple[str, ...], prefix: str, checked: bool) -> Any:
    """An INSERT of one row of `table`, its values bound as `prefix` + column; `checked`: only
    if the run's assistant is unchanged."""
    values = {key: _prefixed_bind(prefix, table.c[key]) for key in keys}
    if not checked:
        return sa.insert(table).values(values)
    row = sa.select(*values.values()).where(_ASSISTANT_UNCHANGED)
    return sa.insert(table).from_select([table.c[key] for key in keys], row)


@functools.cache
def _insert_with_thread(
    thread_keys: tuple[str, ...], run_keys: tuple[str, ...], checked: bool
) -> sa.Insert:
    """A run and its new thread in one statement, the thread's INSERT in a WITH (PostgreSQL
    checks the run's foreign key at the statement's end, when the thread is there). Checked,
    both INSERTs read the assistant in the statement's one snapshot: both are made, or neither."""
    new_thread = _inserted_from(thread, thread_keys, "thread_", checked).cte("new_thread")
    return prepared(_inserted_from(run, run_keys, "run_", checked).add_cte(new_thread))


@functools.cache
def _insert_checked(table: sa.Table, keys: tuple[str, ...]) -> sa.Insert:
    return prepared(_inserted_from(table, keys, "", checked=True))


def _prefixed_bind(prefix: str, column: sa.Column[Any]) -> sa.BindParameter[Any]:
    return sa.bindparam(prefix + column.key, type_=column.type)


_ACTIVE_FOR_THREAD = prepared(
    sa.select(run)
    .where(run.c.thread_id == sa.bindparam("of_thread_id"), is_active(run.c.status))
    .order_by(run.c.created_at)
)

_LOCK_THREAD_OF_RUN = prepared(
    sa.select(thread.c.thread_id)
    .where(
        thread.c.thread_id
        == sa.select(run.c.thread_id)
        .where(run.c.run_id == sa.bindparam("of_run_id"))
        .scalar_subquery()
    )
    .with_for_update()
)

_QUEUE_FIGURES = (
    sa.select(run.c.status, sa.func.count(), sa.func.min(run.c.created_at))
    .where(run.c.status.in_(ACTIVE_STATUSES))
    .group_by(run.c.status)
)


class RunRepository:
    def __init__(
        self,
        conn: Connection,
        dialect: Dialect,
        thread_filter: Mapping[str, Any] | None = None,
    ) -> None:
        self._conn = conn
        self._dialect = dialect
        # A run is visible when its thread is.
        thread_visible = visible(dialect, thread.c.metadata, thread_filter)
        self._visible = (
            [run.c.thread_id.in_(sa.select(thread.c.thread_id).where(*thread_visible))]
            if thread_visible
            else []
        )

    async def insert(
        self, record: dict[str, Any], unchanged_assistant: Mapping[str, Any] | None = None
    ) -> bool:
        """Insert the run; with `unchanged_assistant` (what it was built from), only if that is
        still the assistant's current state. Whether it was inserted."""
        if unchanged_assistant is None:
            await self._conn.execute(_INSERT, record)
            return True
        parameters = {**record, **_unchanged_parameters(unchanged_assistant)}
        inserted = await self._conn.execute(_insert_checked(run, tuple(record)), parameters)
        return bool(inserted.rowcount)

    async def insert_with_thread(
        self,
        thread_record: dict[str, Any],
        run_record: dict[str, Any],
        unchanged_assistant: Mapping[str, Any] | None = None,
    ) -> bool:
        """A run and the new thread it goes on: one statement on PostgreSQL, so that both are
        written at once in an autocommit block (no BEGIN and COMMIT); two on SQLite, where an
        autocommit block is one transaction. With `unchanged_assistant` (what the run was built
        from), neither is written unless it is still the assistant's current state; whether
        they were."""
        checked = unchanged_assistant is not None
        unchanged = (
            {} if unchanged_assistant is None else _unchanged_parameters(unchanged_assistant)
        )
        if self._dialect.name != "postgresql":
            first = _insert_checked(thread, tuple(thread_record)) if checked else _INSERT_THREAD
            inserted = await self._conn.execute(first, {**thread_record, **unchanged})
            if not inserted.rowcount:
                return False
            await self._conn.execute(_INSERT, run_record)
            return True
        statement = _insert_with_thread(tuple(thread_record), tuple(run_record), checked)
        parameters = {f"thread_{key}": value for key, value in thread_record.items()}
        parameters.update((f"run_{key}", value) for key, value in run_record.items())
        inserted = await self._conn.execute(statement, {**parameters, **unchanged})
        return bool(inserted.rowcount)

    async def get(self, run_id: str, thread_id: str | None = None) -> dict[str, Any] | None:
        query = sa.select(run).where(run.c.run_id == run_id, *self._visible)
        if thread_id is not None:
            query = query.where(run.c.thread_id == thread_id)
        return await fetch_one(self._conn, query)

    async def get_for_update(self, run_id: str) -> dict[str, Any] | None:
        """Read a run and hold its row (and its thread's) until the transaction ends."""
        query = sa.select(run).where(run.c.run_id == run_id)
        await self._lock_thread_of(run_id)
        if self._dialect.name == "postgresql":
            query = query.with_for_update()
        return await fetch_one(self._conn, query)

    async def _lock_thread_of(self, run_id: str) -> None:
        """Lock the run's thread row first. Creating a run locks the thread, then its runs;
        ending one touches the run, then settles the thread: one order avoids deadlocks."""
        if self._dialect.name != "postgresql":
            return
        await self._conn.execute(_LOCK_THREAD_OF_RUN, {"of_run_id": run_id})

    async def list_for_thread(
        self, thread_id: str, *, status: str | None, limit: int, offset: int
    ) -> list[dict[str, Any]]:
        query = sa.select(run).where(run.c.thread_id == thread_id, *self._visible)
        if status is not None:
            query = query.where(run.c.status == status)
        query = query.order_by(run.c.created_at.desc(), run.c.run_id.desc())
        return await fetch_all(self._conn, query.limit(limit).offset(offset))

    async def active_for_thread(self, thread_id: str) -> list[dict[str, Any]]:
        return await fetch_all(self._conn, _ACTIVE_FOR_THREAD, {"of_thread_id": thread_id})

    async def has_active(self, thread_id: str) -> bool:
        query = sa.select(run.c.run_id).where(run.c.thread_id == thread_id, is_active(run.c.status))
        return (await self._conn.execute(query.limit(1))).first() is not None

    async def active(self, status: str | None = None) -> list[dict[str, Any]]:
        statuses = ACTIVE_STATUSES if status in (None, "all") else (status,)
        return await fetch_all(
            self._conn, sa.select(run).where(run.c.status.in_(statuses), *self._visible)
        )

    async def set_status(self, run_id: str, status: str, now: datetime) -> None:
        await self._conn.execute(
            sa.update(run).where(run.c.run_id == run_id).values(status=status, updated_at=now)
        )

    async def request_cancel(self, run_id: str, action: str, now: datetime) -> None:
        await self._conn.execute(
            sa.update(run)
            .where(run.c.run_id == run_id)
            .values(cancel_action=action, updated_at=now)
        )

    async def delete(self, run_id: str) -> bool:
        result = await self._conn.execute(sa.delete(run).where(run.c.run_id == run_id))
        return bool(result.rowcount)

    async def queue_figures(self) -> dict[str, tuple[int, datetime | None]]:
        """Per active status, how many runs have it and the creation time of the oldest."""
        result = await self._conn.execute(_QUEUE_FIGURES)
        return {status: (count, oldest) for status, count, oldest in result.all()}

    async def claim_due(
        self, now: datetime, lease: timedelta, limit: int
    ) -> tuple[list[dict[str, Any]], datetime | None]:
        """Mark up to `limit` due pending runs as running (see `_claim_statement`); return them
        and when the earliest delayed pending run becomes due (read in the same statement)."""
        params = {"queue_now": now, "queue_lease_until": now + lease, "queue_limit": limit}
        claimed = await fetch_all(self._conn, _claim_statement(self._dialect), params)
        if not claimed:
            return [], await self.next_due_at(now)
        next_due = claimed[0][_NEXT_DUE_AT]
        for found in claimed:
            del found[_NEXT_DUE_AT]
        return claimed, next_due

    async def next_due_at(self, now: datetime) -> datetime | None:
        """When the earliest delayed pending run becomes due."""
        result = await self._conn.execute(_NEXT_DUE, {"queue_now": now})
        return result.scalar_one_or_none()

    async def renew_lease(
        self, run_id: str, attempt: int, now: datetime, lease: timedelta
    ) -> tuple[bool, str | None]:
        """Extend this attempt's lease. Returns whether it still holds the run, and any
        cancel requested for it (read here so a missed broker signal still stops the run)."""
        params = _attempt(run_id, attempt, queue_lease_until=now + lease)
        row = (await self._conn.execute(_RENEW_LEASE, params)).first()
        return (row is not None, row[0] if row is not None else None)

    async def finish_attempt(self, run_id: str, attempt: int, status: str, now: datetime) -> bool:
        """Record how an attempt ended, unless the run was taken over since (a stale attempt)."""
        await self._lock_thread_of(run_id)
        params = _attempt(run_id, attempt, queue_status=status, queue_now=now)
        return bool((await self._conn.execute(_END_ATTEMPT, params)).rowcount)

    async def end_attempt_settling_thread(
        self,
        run_id: str,
        attempt: int,
        status: str,
        now: datetime,
        *,
        error: Any,
        state: dict[str, Any] | None,
        when_free: str,
    ) -> bool | None:
        """PostgreSQL only (`Dialect.ends_attempts_in_one_call`): `finish_attempt`, then the
        thread settled with the run's `error` and `state`, its status `when_free` unless other
        runs are active on it. Whether they are; None when the attempt no longer held the run.
        One statement: call it in an autocommit block."""
        params = _attempt(
            run_id,
            attempt,
            queue_status=status,
            queue_now=now,
            end_error=error,
            end_sets_state=state is not None,
            end_values=state.get("values") if state is not None else None,
            end_interrupts=state.get("interrupts", {}) if state is not None else {},
            end_when_free=when_free,
        )
        ended = (await self._conn.execute(_END_ATTEMPT_SETTLING_THREAD, params)).one()
        return bool(ended.thread_busy) if ended.recorded else None

    async def delete_attempt(self, run_id: str, attempt: int) -> bool:
        await self._lock_thread_of(run_id)
        result = await self._conn.execute(_DELETE_ATTEMPT, _attempt(run_id, attempt))
        return bool(result.rowcount)

    async def end_temporary_attempt(self, run_id: str, attempt: int) -> bool:
        """A stateless run's attempt ends: the run and its thread are deleted, if the attempt
        still holds the run; whether it did. Its own transaction on PostgreSQL, so call it in
        an autocommit block; there the thread's checkpoints go too (`Dialect.holds_checkpoints`,
        migration 0012)."""
        if self._dialect.name == "postgresql":
            ended = await self._conn.execute(_END_TEMPORARY_ATTEMPT, _attempt(run_id, attempt))
            return bool(ended.scalar())
        deleted = (
            await self._conn.execute(_DELETE_ATTEMPT_OF_THREAD, _attempt(run_id, attempt))
        ).first()
        if deleted is None:
            return False
        await self._conn.execute(_DELETE_THREAD, {"ended": deleted.thread_id})
        return True

    async def expired_leases(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Running runs whose worker stopped renewing its lease (it died or lost the database).

        Not locked here: the updates that follow are conditional on the attempt, so of two
        reapers only one wins, and taking run locks before thread locks could deadlock."""
        query = (
            sa.select(run)
            .where(has_status(run.c.status, "running"), run.c.lease_expires_at < now)
            .order_by(run.c.lease_expires_at)
            .limit(limit)
        )
        return await fetch_all(self._conn, query)

    async def release(self, run_id: str, attempt: int, now: datetime) -> bool:
        """Return a running attempt to the queue; the next claim counts a new attempt."""
        params = _attempt(run_id, attempt, queue_status="pending", queue_now=now)
        return bool((await self._conn.execute(_END_ATTEMPT, params)).rowcount)
