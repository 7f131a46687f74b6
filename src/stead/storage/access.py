"""What one request may see: the metadata filters that authorization handlers return, applied
inside the queries so that a row outside them is never read, counted or changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

import sqlalchemy as sa

from stead.storage.dialects import Dialect

# `$or`/`$and` may hold filters that hold no further `$or`/`$and`: the official limit.
_MAX_NESTING = 2


class InvalidFilter(ValueError):
    """An authorization handler returned a filter the server cannot apply."""


@dataclass(frozen=True)
class Access:
    """A metadata filter per resource; None lets every row of that resource through.

    Runs are seen through their thread: the `threads` filter decides which runs are visible.
    """

    threads: Mapping[str, Any] | None = None
    assistants: Mapping[str, Any] | None = None
    crons: Mapping[str, Any] | None = None

    def restrict(self, resource: str, metadata_filter: Mapping[str, Any] | None) -> Access:
        """This access with `metadata_filter` on `resource` as well (both must match)."""
        if metadata_filter is None:
            return self
        validate_filter(metadata_filter)
        current = getattr(self, resource)
        combined = (
            metadata_filter if current is None else {"$and": [dict(current), dict(metadata_filter)]}
        )
        return replace(self, **{resource: combined})


UNRESTRICTED = Access()


def validate_filter(metadata_filter: Mapping[str, Any], depth: int = 1) -> None:
    if not isinstance(metadata_filter, Mapping):
        raise InvalidFilter(f"an authorization filter must be a dict, got {metadata_filter!r}")
    for key, value in metadata_filter.items():
        if key in ("$or", "$and"):
            if depth >= _MAX_NESTING + 1 or not isinstance(value, list) or len(value) < 2:
                raise InvalidFilter(f"{key} takes a list of at least two filters, nested twice")
            for part in value:
                validate_filter(part, depth + 1)
        elif key.startswith("$"):
            raise InvalidFilter(f"unknown filter operator {key}")
        elif _is_operator(value) and (set(value) - {"$eq", "$contains"} or len(value) != 1):
            raise InvalidFilter(f"{key}: only $eq and $contains are supported")


def _is_operator(value: Any) -> bool:
    return isinstance(value, Mapping) and any(str(k).startswith("$") for k in value)


def filter_clause(
    dialect: Dialect, column: sa.ColumnElement[Any], metadata_filter: Mapping[str, Any]
) -> sa.ColumnElement[bool]:
    """The SQL condition under which the JSON metadata in `column` matches `metadata_filter`."""
    clauses: list[sa.ColumnElement[bool]] = []
    for key, value in metadata_filter.items():
        if key == "$or":
            clauses.append(sa.or_(*(filter_clause(dialect, column, part) for part in value)))
        elif key == "$and":
            clauses.append(sa.and_(*(filter_clause(dialect, column, part) for part in value)))
        elif isinstance(value, Mapping) and "$contains" in value:
            wanted = value["$contains"]
            items = wanted if isinstance(wanted, list) else [wanted]
            clauses.append(dialect.json_contains(column, {key: items}))
        elif isinstance(value, Mapping) and "$eq" in value:
            clauses.append(dialect.json_contains(column, {key: value["$eq"]}))
        else:
            clauses.append(dialect.json_contains(column, {key: value}))
    return sa.and_(sa.true(), *clauses)


Statement = TypeVar("Statement", bound=sa.Select[Any] | sa.Delete | sa.Update)


def restricted(statement: Statement, clauses: list[sa.ColumnElement[bool]]) -> Statement:
    """`statement` kept to what `visible` allows; unchanged when nothing is filtered, so that
    a statement built once keeps its cached form."""
    return cast(Statement, statement.where(*clauses)) if clauses else statement


def visible(
    dialect: Dialect, column: sa.ColumnElement[Any], metadata_filter: Mapping[str, Any] | None
) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses that keep a query to the rows a request may see (none if unfiltered)."""
    if metadata_filter is None:
        return []
    return [filter_clause(dialect, column, metadata_filter)]
