"""What the repositories need of a database connection and an engine, whichever backend serves
them: stead.storage.postgres_engine.PostgresEngine on PostgreSQL,
stead.storage.sqlite_inline.InlineEngine on SQLite. Statements marked prepared
(stead.storage.prepared) return a PreparedResult, the others SQLAlchemy's CursorResult.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

from stead.storage.prepared import PreparedResult

T = TypeVar("T")


class Connection(Protocol):
    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.CursorResult[*tuple[Any, ...]] | PreparedResult: ...

    async def run_sync(self, fn: Callable[[sa.Connection], T]) -> T: ...


class Engine(Protocol):
    @property
    def dialect(self) -> sa.Dialect: ...

    def connections_in_use(self) -> int: ...

    def begin(self) -> AbstractAsyncContextManager[Connection]: ...

    def connect(self) -> AbstractAsyncContextManager[Connection]: ...

    def autocommit(self) -> AbstractAsyncContextManager[Connection]:
        """A block of statements that stand alone: reads that lock nothing, or a single write."""
        ...

    async def dispose(self) -> None: ...
