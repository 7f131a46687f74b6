"""SQLite connections that run each statement on the event loop's own thread.

aiosqlite hands every call to a thread of its own and the result back: two thread switches and a
future per statement. On the embedded default that was a quarter of the server's CPU per run
(py-spy, bench/README.md), for statements that take microseconds. In the embedded default one
process holds each file, in WAL mode, so no statement waits for a lock, and running it in place
costs nothing but its own time. The price: a long statement (a sweep deleting many rows) holds
the event loop for as long as it runs.

Two ways in, one per user:
- `connect` keeps aiosqlite's interface, which LangGraph's SQLite savers use; only where a call
  runs changes. That means overriding aiosqlite's private `_execute`, `_connect`, `stop` and
  `close`, and calling its `_connector` again to reopen (aiosqlite is pinned;
  tests/integration/test_sqlite_inline.py and test_large_values.py fail if a release changes
  what they mean).
- `InlineEngine` serves Stead's own tables through SQLAlchemy's synchronous engine. SQLAlchemy's
  asyncio layer runs each statement in a new greenlet and switches to it and back: on a
  transaction of two statements that was 290 µs against 120 µs without it.

Both reopen their connection once a transaction that bound a large value ended. Python's sqlite3
keeps its statements cached and resets them, but never clears their bindings: each keeps its last
values until it runs again, so one 20 MiB run left its input, checkpoint and writes in memory
(60 MiB, bench/README.md). A new connection's cache starts empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import sqlalchemy as sa

from stead.storage.prepared import CompiledStatement, PreparedResult, compiled_for

T = TypeVar("T")

_ITER_CHUNK_SIZE = 64  # aiosqlite's default: rows fetched per step of `async for`

# A bound value this large makes its connection due to be reopened (see the module's docstring).
LARGE_VALUE_BYTES = 4 * 1024 * 1024


class LargeValues:
    """Whether a connection bound a value of `LARGE_VALUE_BYTES` or more since it was opened."""

    def __init__(self) -> None:
        self.bound = False

    def note(self, value: str | bytes) -> None:
        if len(value) >= LARGE_VALUE_BYTES:
            self.bound = True

    def note_parameters(self, parameters: object) -> None:
        """A statement's parameters: values, a mapping of them, or rows of them (executemany).
        An iterator is not looked at: the statement reads it once."""
        if isinstance(parameters, dict):
            parameters = tuple(parameters.values())
        # Tuples of types, and `type() is`: half the time of `isinstance` with unions.
        if not isinstance(parameters, (tuple, list)):
            return
        for value in parameters:
            kind = type(value)
            if kind is str or kind is bytes:
                if len(value) >= LARGE_VALUE_BYTES:
                    self.bound = True
            elif isinstance(value, (tuple, list, dict)):
                self.note_parameters(value)

    def take(self) -> bool:
        """Whether one was bound; forgotten once asked (the connection is then reopened)."""
        bound, self.bound = self.bound, False
        return bound


class TurnCommit:
    """Writes on one connection that return once committed, in one commit per turn of the event
    loop: the first write of a turn schedules the commit for the next turn, and the writes made
    meanwhile share it. A commit costs about as much as a small write, and under load several
    runs write in one turn (bench/README.md). A commit that fails reaches every write it held; a
    caller cancelled while it waits does not cancel the commit.

    `busy`: whether the connection is in the middle of a write now; the commit is then due, and
    made by its user once the write ends (`due`).
    """

    def __init__(
        self,
        commit: Callable[[], None],
        rollback: Callable[[], None],
        busy: Callable[[], bool],
    ) -> None:
        self._commit = commit
        self._rollback = rollback
        self._busy = busy
        self._waiters: list[asyncio.Future[None]] | None = None
        self.due = False

    @property
    def pending(self) -> bool:
        """Whether writes wait for the commit scheduled for this turn's end."""
        return self._waiters is not None

    def join(self) -> asyncio.Future[None]:
        """A future done once the writes made so far are committed (or their commit failed)."""
        waiter = asyncio.get_running_loop().create_future()
        self._scheduled().append(waiter)
        return waiter

    def schedule(self) -> None:
        """Have this turn's transaction end at the turn's end, whether or not a write waits."""
        self._scheduled()

    def commit_now(self) -> None:
        """Commit the waiting writes at once, and tell their callers."""
        waiters, self._waiters = self._waiters or [], None
        self.due = False
        try:
            self._commit()
        except Exception as exc:
            try:
                self._rollback()
            finally:
                _tell(waiters, exc)  # whether or not the rollback failed too
        else:
            _tell(waiters, None)

    def abandon(self, failure: BaseException) -> None:
        """The transaction the waiting writes were in is gone: they failed with `failure`."""
        waiters, self._waiters = self._waiters or [], None
        self.due = False
        _tell(waiters, failure)

    def _scheduled(self) -> list[asyncio.Future[None]]:
        if self._waiters is None:
            self._waiters = []
            asyncio.get_running_loop().call_soon(self._at_turn_end)
        return self._waiters

    def _at_turn_end(self) -> None:
        if self._waiters is None:  # committed already (`commit_now`)
            return
        if self._busy():
            self.due = True
            return
        self.commit_now()


@contextlib.contextmanager
def _turn_savepoint(driver: sqlite3.Connection, turn_commit: TurnCommit) -> Iterator[None]:
    """One block's statements in a savepoint of the turn's transaction, begun if none is open.
    A block that fails undoes its own statements only, and the turn's transaction still ends
    with the turn; unless its error ended the whole transaction (SQLite rolls back on a full
    disk or an I/O error), and then the writes waiting for the turn's commit fail too."""
    if not driver.in_transaction:
        driver.execute("BEGIN")
    driver.execute("SAVEPOINT turn_block")
    try:
        yield
    except BaseException as failure:
        try:
            driver.execute("ROLLBACK TO turn_block")
            driver.execute("RELEASE turn_block")
        except sqlite3.Error:  # no such savepoint, or no connection: the transaction is gone
            turn_commit.abandon(failure)
        else:
            turn_commit.schedule()
        raise
    driver.execute("RELEASE turn_block")


def _tell(waiters: list[asyncio.Future[None]], failure: BaseException | None) -> None:
    for waiter in waiters:
        if waiter.done():  # its caller was cancelled
            continue
        if failure is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(failure)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose worker thread is never started."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], iter_chunk_size: int) -> None:
        super().__init__(connector, iter_chunk_size)
        self.large_values = LargeValues()
        self._turn_commit = TurnCommit(self.commit_now, self._rollback, busy=lambda: False)

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self.sqlite_connection()  # raises once closed
        if len(args) > 1:
            self.large_values.note_parameters(args[1])
        return fn(*args, **kwargs)

    def sqlite_connection(self) -> sqlite3.Connection:
        """The open sqlite3 connection, for statements run on it directly (`run`)."""
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return self._connection

    @contextlib.contextmanager
    def turn_write(self) -> Iterator[None]:
        """One write's statements, in the transaction that the writes of this turn of the event
        loop share (`commit_turn` commits it), inside a savepoint (`_turn_savepoint`)."""
        with _turn_savepoint(self.sqlite_connection(), self._turn_commit):
            yield

    async def commit_turn(self) -> None:
        """Return once the writes made on this connection so far are committed, with the other
        writes of this turn of the event loop (`TurnCommit`)."""
        await self._turn_commit.join()

    def commit_now(self) -> None:
        """Commit at once, with the writes of this turn made so far (their callers are told so
        at the turn's end)."""
        self.sqlite_connection().commit()

    def _rollback(self) -> None:
        if self._connection is not None and self._connection.in_transaction:
            self._connection.rollback()

    def run(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        """One statement, now, past aiosqlite's cursor and result wrappers: for the writes every
        run makes (stead.storage.sqlite_savers)."""
        self.large_values.note_parameters(parameters)
        return self.sqlite_connection().execute(sql, parameters)

    async def reopen_if_large_values_bound(self, users: asyncio.Lock) -> None:
        """Close the file and open it again, set up as at first, if a large value was bound.
        `users` is the lock its users hold while they have a cursor open (LangGraph's saver's
        and store's own). Not inside a transaction (one left open by a failed write): closing
        would roll it back, so that waits for the next time."""
        if not self.large_values.bound:
            return
        async with users:
            if self._connection is None or self._connection.in_transaction:
                return
            self._connection.close()
            self._connection = self._connector()
            self.large_values.take()

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect().__await__()

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


def connect(
    path: str | Path,
    *,
    setup: Callable[[sqlite3.Connection], None] | None = None,
    **options: Any,
) -> InlineConnection:
    """Like `aiosqlite.connect`: `options` go to `sqlite3.connect`. `setup` prepares each new
    connection (pragmas, attached files), the first and any reopened."""

    def connector() -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), **options)
        if setup is not None:
            setup(conn)
        return conn

    return InlineConnection(connector, _ITER_CHUNK_SIZE)


class InlineEngine:
    """A synchronous SQLAlchemy engine of one SQLite connection, behind the asynchronous
    interface of stead.storage.connections.Engine.

    Its one connection is taken in turns: a transaction that awaits something else keeps it,
    and others wait for it without blocking the event loop, up to `timeout` seconds, then fail
    as a pool that ran out of connections fails (sqlalchemy.exc.TimeoutError).

    The blocks of `autocommit` (statements that stand alone: a run stored, claimed, ended) share
    one commit per turn of the event loop (`TurnCommit`), each in a savepoint of the turn's
    transaction: at 64 clients a stateless run's three commits were most of its SQLite time on
    this file, each writing again the pages the others wrote (bench/README.md). Each block still
    returns only once committed. A `begin` or `connect` block commits the waiting ones first:
    it may await anything while it holds the connection, and they must not wait for it.
    """

    def __init__(self, engine: sa.Engine, timeout: float, large_values: LargeValues) -> None:
        """`large_values` is told of the large values bound (by the engine's JSON serialiser,
        which every large value of Stead's tables goes through)."""
        self._engine = engine
        self._timeout = timeout
        self._large_values = large_values
        self._turn = asyncio.Lock()
        self._connection: sa.Connection | None = None
        self._turn_commit = TurnCommit(
            self._commit_kept, self._rollback_kept, busy=self._turn.locked
        )

    @property
    def dialect(self) -> sa.Dialect:
        return self._engine.dialect

    def connections_in_use(self) -> int:
        """1 while a transaction holds the connection (the pool sees it checked out always)."""
        return 1 if self._turn.locked() else 0

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[InlineSqlConnection]:
        async with self._connection_turn() as conn:
            self._commit_waiting()
            with conn.begin():
                yield InlineSqlConnection(conn)

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[InlineSqlConnection]:
        async with self._connection_turn() as conn:
            if not conn.in_transaction():
                conn.begin()
            with _turn_savepoint(_sqlite_of(conn), self._turn_commit):
                yield InlineSqlConnection(conn)
            committed = self._turn_commit.join()
        await committed

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[InlineSqlConnection]:
        async with self._connection_turn() as conn:
            self._commit_waiting()
            yield InlineSqlConnection(conn)

    def _commit_waiting(self) -> None:
        if self._turn_commit.pending:
            self._turn_commit.commit_now()

    def _commit_kept(self) -> None:
        if self._connection is not None and self._connection.in_transaction():
            self._connection.commit()

    def _rollback_kept(self) -> None:
        """After a failed commit: SQLAlchemy counts its transaction ended, SQLite does not."""
        if self._connection is None:
            return
        self._connection.rollback()
        if self._connection.invalidated:
            return
        driver = _sqlite_of(self._connection)
        if driver.in_transaction:
            driver.rollback()

    async def dispose(self) -> None:
        self._commit_waiting()
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._engine.dispose()

    @contextlib.asynccontextmanager
    async def _connection_turn(self) -> AsyncIterator[sa.Connection]:
        if self._turn.locked():
            await self._wait_for_turn()
        else:
            # Free now: no timer to arm (most transactions). Were others just woken for it,
            # this waits behind them, each of whom holds it for one transaction.
            await self._turn.acquire()
        try:
            conn = self._kept_connection()
            try:
                yield conn
            finally:
                large = self._large_values.take()
                if large or self._turn_commit.due:
                    # Before the connection goes, with what it holds; or the turn ended meanwhile.
                    self._commit_waiting()
                # Reads outside `begin` open a transaction of their own: it ends with the
                # turn, as it would on the connection's return to a pool.
                if conn.in_transaction() and not self._turn_commit.pending:
                    conn.rollback()
                if large:
                    conn.invalidate()  # closed now, opened again by the next turn
        finally:
            self._turn.release()

    def _kept_connection(self) -> sa.Connection:
        """The one connection, kept checked out between turns (a checkout and a return to the
        pool per transaction were 4% of a run's CPU); opened again once an error invalidated
        it."""
        if self._connection is not None and self._connection.invalidated:
            self._connection.close()
            self._connection = None
        if self._connection is None:
            self._connection = self._engine.connect()
        return self._connection

    async def _wait_for_turn(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._turn.acquire()
        except TimeoutError:
            raise sa.exc.TimeoutError(
                f"the database connection stayed busy for {self._timeout:g} s"
            ) from None


def _sqlite_of(conn: sa.Connection) -> sqlite3.Connection:
    driver = conn.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    return driver


class InlineSqlConnection:
    """A connection of an InlineEngine: each statement runs in place."""

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    async def execute(
        self, statement: sa.Executable, parameters: Any = None
    ) -> sa.CursorResult[*tuple[Any, ...]] | PreparedResult:
        compiled = compiled_for(statement, self._conn.dialect, parameters)
        if compiled is None:
            return self._conn.execute(statement, parameters)
        return self._execute_prepared(compiled, parameters)

    def _execute_prepared(self, compiled: CompiledStatement, given: Any) -> PreparedResult:
        if not self._conn.in_transaction():
            # As SQLAlchemy begins one on a first statement: the turn's end then rolls it back.
            self._conn.begin()
        parameters = compiled.parameters(given)
        cursor = _sqlite_of(self._conn).cursor()
        try:
            cursor.execute(compiled.sql, parameters)
            rows = cursor.fetchall()
            # SQLite has no column types to report: its processors need none.
            return compiled.result(rows, cursor.rowcount, (None,) * len(compiled.result_types))
        except sqlite3.Error as exc:
            raise compiled.driver_error(exc, parameters) from exc
        finally:
            cursor.close()

    async def run_sync(self, fn: Callable[[sa.Connection], T]) -> T:
        return fn(self._conn)
