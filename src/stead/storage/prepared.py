"""The statements every run sends, compiled once and run on the driver's own connection.

SQLAlchemy builds and compiles Stead's statements, and runs most of them. Its execution layer
(an ExecutionContext, a CursorResult, their events) cost about 25 µs a statement on SQLite, and
more on PostgreSQL, where its asyncio layer also switches greenlets: a run's seven statements cost
the API and the worker 0.9 ms together (bench/README.md, "Prepared statements"). Statements the
repositories mark with `prepared` skip that layer: compiled here once per dialect and set of
parameter names, with SQLAlchemy's own compiler and the types' own bind and result processors,
then run on the connection's driver connection, inside the transaction SQLAlchemy began. Every
other statement goes through SQLAlchemy as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import IteratorResult
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.sql.dml import UpdateBase

Statement = TypeVar("Statement", bound=sa.Executable)
Processor = Callable[[Any], Any]

# Marked statements by identity: they are built once, at import or in a cached builder of a few
# variants, and are kept here for good, so an id is never reused by another statement.
_MARKED: dict[int, sa.Executable] = {}
_COMPILED: dict[tuple[int, str, tuple[str, ...]], CompiledStatement] = {}


class PreparationError(ValueError):
    """A statement marked `prepared` that cannot be run past SQLAlchemy's execution layer."""


def prepared(statement: Statement) -> Statement:
    """Mark `statement`, built once with all its values as bound parameters, to run on the
    driver's connection (see the module's docstring); it is returned unchanged."""
    _MARKED[id(statement)] = statement
    return statement


def compiled_for(
    statement: sa.Executable, dialect: sa.Dialect, parameters: Mapping[str, Any] | None
) -> CompiledStatement | None:
    """`statement` compiled for `dialect` and these parameter names; None unless it is marked."""
    if id(statement) not in _MARKED:
        return None
    names = tuple(sorted(parameters)) if parameters else ()
    key = (id(statement), dialect.name, names)
    compiled = _COMPILED.get(key)
    if compiled is None:
        compiled = _COMPILED[key] = CompiledStatement.compile(statement, dialect, names)
    return compiled


@dataclass(frozen=True)
class CompiledStatement:
    sql: str
    compiled: sa.Compiled
    # Parameter names in the order of the SQL's placeholders, for positional drivers (SQLite).
    positions: tuple[str, ...] | None
    bind_processors: tuple[tuple[str, Processor], ...]
    result_metadata: SimpleResultMetaData
    result_types: tuple[sa.types.TypeEngine[Any], ...]
    dialect: sa.Dialect
    # Result processors by the driver's type codes of the columns (a NUMERIC's depends on them).
    _result_processors: dict[tuple[Any, ...], tuple[Processor | None, ...]] = field(
        default_factory=dict
    )

    @classmethod
    def compile(
        cls, statement: sa.Executable, dialect: sa.Dialect, names: tuple[str, ...]
    ) -> CompiledStatement:
        # As SQLAlchemy compiles it: an INSERT without values takes its columns from the names.
        compiled = statement.compile(dialect=dialect, column_keys=list(names))  # type: ignore[attr-defined]
        _check_runs_as_compiled(compiled)
        bind_processors = tuple(
            (name, processor)
            for bind, name in compiled.bind_names.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        )
        columns = _result_columns(statement)
        return cls(
            sql=compiled.string,
            compiled=compiled,
            positions=tuple(compiled.positiontup) if compiled.positiontup is not None else None,
            bind_processors=bind_processors,
            result_metadata=SimpleResultMetaData([str(column.key) for column in columns]),
            result_types=tuple(column.type.dialect_impl(dialect) for column in columns),
            dialect=dialect,
        )

    def parameters(self, given: Mapping[str, Any] | None) -> Sequence[Any] | Mapping[str, Any]:
        """The driver's parameters: `given` with the statement's own bound values, processed."""
        values = self.compiled.construct_params(given or None)
        assert values is not None
        for name, processor in self.bind_processors:
            values[name] = processor(values[name])
        if self.positions is None:
            return values
        return [values[name] for name in self.positions]

    def result(
        self, rows: Iterable[Sequence[Any]], rowcount: int, type_codes: tuple[Any, ...]
    ) -> PreparedResult:
        processors = self._processors_for(type_codes)
        if any(processors):
            rows = [
                tuple(
                    value if p is None else p(value)
                    for p, value in zip(processors, row, strict=True)
                )
                for row in rows
            ]
        return PreparedResult(self.result_metadata, iter(rows), rowcount)

    def _processors_for(self, type_codes: tuple[Any, ...]) -> tuple[Processor | None, ...]:
        processors = self._result_processors.get(type_codes)
        if processors is None:
            processors = self._result_processors[type_codes] = tuple(
                type_.result_processor(self.dialect, code)
                for type_, code in zip(self.result_types, type_codes, strict=True)
            )
        return processors

    def driver_error(self, exc: Exception, parameters: Any) -> sa.exc.StatementError:
        """`exc`, raised by the driver, as SQLAlchemy raises it for a statement of its own."""
        return sa.exc.DBAPIError.instance(
            self.sql, parameters, exc, self.dialect.loaded_dbapi.Error, dialect=self.dialect
        )


class PreparedResult(IteratorResult[Any]):
    """A prepared statement's rows, with the Result interface and, as a cursor's, its rowcount."""

    def __init__(
        self, metadata: SimpleResultMetaData, rows: Iterable[Sequence[Any]], rowcount: int
    ) -> None:
        super().__init__(metadata, iter(rows))
        self.rowcount = rowcount


def _check_runs_as_compiled(compiled: sa.Compiled) -> None:
    """What SQLAlchemy would still do to a compiled statement as it runs it is not done here:
    expand an IN list, escape a parameter's name, compute a Python-side default or value."""
    assert isinstance(compiled, sa.sql.compiler.SQLCompiler)
    binds = compiled.binds.values()
    if (
        any(bind.expanding or bind.callable is not None for bind in binds)
        or compiled.escaped_bind_names
        or compiled.insert_prefetch
        or compiled.update_prefetch
    ):
        raise PreparationError(f"finished as it runs, so it cannot be prepared: {compiled}")


def _result_columns(statement: sa.Executable) -> list[sa.ColumnElement[Any]]:
    if isinstance(statement, sa.Select) or (
        isinstance(statement, UpdateBase) and statement._returning
    ):
        return list(statement.exported_columns)
    return []
