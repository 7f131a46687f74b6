"""Everything that differs between SQLite and PostgreSQL, in one place."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

from stead import serde


class Dialect:
    name = "base"
    # Whether LangGraph's checkpoint tables live in this database (on SQLite they have a file of
    # their own), so that the end of a stateless run deletes its checkpoints with its thread.
    holds_checkpoints = False
    # Whether a run's attempt ends with its thread settled in one call of a function of the
    # database's own (migration 0013) rather than a transaction of statements.
    ends_attempts_in_one_call = False

    def json_contains(
        self, column: sa.ColumnElement[Any], value: dict[str, Any]
    ) -> sa.ColumnElement[bool]:
        """True where the JSON document in `column` contains `value` (PostgreSQL's `@>`)."""
        raise NotImplementedError

    def claim_candidates(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """The runs a queue claim takes, `query`'s, as the subquery its UPDATE matches against:
        taken once, whatever plan runs the UPDATE. SQLite computes an uncorrelated IN list
        once, and has one writer at a time, so claims need no row locks."""
        return query

    def insert_unless_present(self, table: sa.Table, values: dict[str, Any]) -> Any:
        """An INSERT that does nothing when the primary key exists (processes racing to create
        the same row)."""
        raise NotImplementedError


class SqliteDialect(Dialect):
    """SQLite has one writer at a time, so claims need no row locks; JSON goes via json_extract."""

    name = "sqlite"

    def insert_unless_present(self, table: sa.Table, values: dict[str, Any]) -> Any:
        return sqlite.insert(table).values(**values).on_conflict_do_nothing()

    def json_contains(
        self, column: sa.ColumnElement[Any], value: dict[str, Any]
    ) -> sa.ColumnElement[bool]:
        return sa.and_(sa.true(), *self._contains_at(column, "$", value))

    def _contains_at(
        self, column: sa.ColumnElement[Any], path: str, value: Any
    ) -> list[sa.ColumnElement[bool]]:
        if isinstance(value, dict):
            clauses: list[sa.ColumnElement[bool]] = [sa.func.json_type(column, path) == "object"]
            for key, item in value.items():
                clauses += self._contains_at(column, f'{path}."{_quote_key(key)}"', item)
            return clauses
        if isinstance(value, list):
            clauses = [sa.func.json_type(column, path) == "array"]
            clauses += [self._array_has(column, path, item) for item in value]
            return clauses
        return [self._scalar_equals(column, path, value)]

    def _array_has(
        self, column: sa.ColumnElement[Any], path: str, item: Any
    ) -> sa.ColumnElement[bool]:
        elements = sa.func.json_each(column, path).table_valued("value", "type").alias()
        if isinstance(item, (dict, list)):
            match = sa.func.json(elements.c.value) == sa.func.json(serde.dumps(item).decode())
        else:
            match = _scalar_match(elements.c.value, elements.c.type, item)
        return sa.exists(sa.select(sa.literal(1)).select_from(elements).where(match))

    def _scalar_equals(
        self, column: sa.ColumnElement[Any], path: str, value: Any
    ) -> sa.ColumnElement[bool]:
        return _scalar_match(
            sa.func.json_extract(column, path), sa.func.json_type(column, path), value
        )


def _scalar_match(extracted: Any, json_type: Any, value: Any) -> sa.ColumnElement[bool]:
    if value is None:
        return json_type == "null"
    if isinstance(value, bool):
        return json_type == ("true" if value else "false")
    if isinstance(value, (int, float)):
        return sa.and_(json_type.in_(["integer", "real"]), extracted == value)
    return sa.and_(json_type == "text", extracted == str(value))


def _quote_key(key: str) -> str:
    return key.replace('"', '""')


class PostgresDialect(Dialect):
    name = "postgresql"
    holds_checkpoints = True
    ends_attempts_in_one_call = True

    def json_contains(
        self, column: sa.ColumnElement[Any], value: dict[str, Any]
    ) -> sa.ColumnElement[bool]:
        return column.op("@>")(sa.cast(sa.literal(serde.dumps(value).decode()), JSONB))

    def claim_candidates(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """Locked, so that concurrent workers skip them, and materialized: as a plain IN
        subquery the planner may rescan it once per row the UPDATE reads, and each rescan
        skips the rows the UPDATE has just changed and locks the next ones, so a claim of 10
        took 64 runs (tests/integration/test_claim_limit.py)."""
        locked = query.with_for_update(skip_locked=True).cte("claim_candidates")
        materialized = locked.prefix_with("MATERIALIZED", dialect="postgresql")
        return sa.select(*materialized.c)

    def insert_unless_present(self, table: sa.Table, values: dict[str, Any]) -> Any:
        return postgresql.insert(table).values(**values).on_conflict_do_nothing()


# One instance each: statements built once per dialect are cached by it.
_DIALECTS: dict[str, Dialect] = {"sqlite": SqliteDialect(), "postgresql": PostgresDialect()}


def dialect_for(engine_dialect_name: str) -> Dialect:
    try:
        return _DIALECTS[engine_dialect_name]
    except KeyError:
        raise ValueError(f"unsupported database: {engine_dialect_name}") from None
