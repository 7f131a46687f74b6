"""Everything one Stead process runs, built from Settings and started and stopped as a unit."""

from __future__ import annotations

import contextlib
import logging

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.store.sqlite.aio import AsyncSqliteStore

from stead.broker import Broker, InProcessBroker
from stead.config import Settings
from stead.graphs import GraphRegistry, GraphSpec
from stead.services.assistants import AssistantService
from stead.services.runs import RunService, RunStreams
from stead.services.store import StoreService
from stead.services.threads import ThreadService
from stead.storage import Database
from stead.worker.executor import RunExecutor
from stead.worker.queue import RunQueue

logger = logging.getLogger("stead")


class Runtime:
    def __init__(self, settings: Settings, specs: dict[str, GraphSpec]) -> None:
        self.settings = settings
        self._specs = specs
        self._exit = contextlib.AsyncExitStack()
        self.queue: RunQueue | None = None

    async def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.database_url)
        self._exit.push_async_callback(self.db.close)
        await self.db.migrate()
        self.checkpointer = AsyncSqliteSaver(await self._sqlite(settings.checkpoints_path))
        await self.checkpointer.setup()
        # The store opens its own transactions, so its connection must be in autocommit mode.
        self.store = AsyncSqliteStore(await self._sqlite(settings.store_path, autocommit=True))
        await self.store.setup()
        self.broker: Broker = InProcessBroker()
        self._exit.push_async_callback(self.broker.close)
        self.graphs = GraphRegistry(self._specs, self.checkpointer, self.store)
        self.assistants = AssistantService(self.db, self.graphs)
        self.threads = ThreadService(self.db, self.graphs, self.checkpointer, self.broker)
        self.runs = RunService(self.db, self.broker, self.assistants)
        self.run_streams = RunStreams(self.runs, self.broker)
        self.store_items = StoreService(self.store)
        await self.assistants.ensure_system_assistants()
        if settings.n_jobs_per_worker > 0:
            executor = RunExecutor(self.db, self.broker, self.graphs, self.checkpointer)
            self.queue = RunQueue(self.db, self.broker, executor, settings.n_jobs_per_worker)
            await self.queue.start()

    async def stop(self) -> None:
        if self.queue is not None:
            await self.queue.stop(self.settings.shutdown_grace_seconds)
        await self._exit.aclose()

    async def _sqlite(self, path: object, *, autocommit: bool = False) -> aiosqlite.Connection:
        if autocommit:
            conn = await aiosqlite.connect(str(path), isolation_level=None)
        else:
            conn = await aiosqlite.connect(str(path))
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        self._exit.push_async_callback(conn.close)
        return conn
