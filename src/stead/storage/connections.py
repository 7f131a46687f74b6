"""What the repositories need of a database connection and an engine, whichever backend serves
them: SQLAlchemy's AsyncEngine on PostgreSQL, stead.storage.sqlite_inline.InlineEngine on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa

T = TypeVar("T")


class Connection(Protocol):
    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.CursorResult[*tuple[Any, ...]]: ...

    async def run_sync(self, fn: Callable[[sa.Connection], T]) -> T: ...


class Engine(Protocol):
    @property
    def dialect(self) -> sa.Dialect: ...

    @property
    def pool(self) -> sa.Pool: ...

    def begin(self) -> AbstractAsyncContextManager[Connection]: ...

    def connect(self) -> AbstractAsyncContextManager[Connection]: ...

    async def dispose(self) -> None: ...
