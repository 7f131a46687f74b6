"""Everything one Stead process runs, built from Settings and started and stopped as a unit."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta

from stead.auth.api_keys import ApiKeys
from stead.auth.options import AuthOptions
from stead.broker import Broker, InProcessBroker
from stead.config import Settings
from stead.graphs import GraphRegistry, GraphSpec
from stead.http_options import HeaderFilter, mount_prefix
from stead.observability.metrics import METRICS
from stead.observability.tracing import shutdown_tracing
from stead.services.assistants import AssistantService
from stead.services.crons import CronService
from stead.services.health import Health
from stead.services.runs import RunService, RunStreams
from stead.services.store import StoreService
from stead.services.streams import ThreadStreams
from stead.services.thread_protocol import ThreadProtocol
from stead.services.threads import ThreadService
from stead.services.ttl import store_ttl_policy, thread_ttl_policy
from stead.services.webhooks import WebhookConfig, WebhookSender, server_url
from stead.storage import Database
from stead.storage.backends import open_savers, prepare_schema
from stead.worker.executor import RunExecutor
from stead.worker.queue import RunQueue
from stead.worker.reaper import LeaseReaper
from stead.worker.scheduler import CronScheduler
from stead.worker.sweeper import Sweeper

logger = logging.getLogger("stead")


class Runtime:
    def __init__(self, settings: Settings, specs: dict[str, GraphSpec]) -> None:
        self.settings = settings
        self._specs = specs
        self._exit = contextlib.AsyncExitStack()
        self.queue: RunQueue | None = None
        self.scheduler: CronScheduler | None = None
        # Read here, before serving, so that a bad TTL section stops `stead run` with one line.
        self.thread_ttl = thread_ttl_policy(settings)
        self.store_ttl = store_ttl_policy(settings)
        self.webhook_config = WebhookConfig.from_settings(settings)
        self.configurable_headers = HeaderFilter.from_settings(settings)
        self.auth = AuthOptions.from_settings(settings)
        # Made here, not on start: its driver is then loaded when the app registers the
        # driver's errors (stead.storage.database.database_errors).
        self.db = Database(settings.database_url)

    async def start(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._exit.push_async_callback(self.db.close)
        await prepare_schema(settings, self.db)
        self.api_keys = ApiKeys(self.db)
        self.checkpointer, self.store = await open_savers(
            settings, self._exit, self.store_ttl.langgraph_config()
        )
        self.broker = open_broker(settings)
        self._exit.push_async_callback(self.broker.close)
        self.graphs = GraphRegistry(self._specs, self.checkpointer, self.store)
        self.assistants = AssistantService(self.db, self.graphs)
        self.threads = ThreadService(
            self.db,
            self.graphs,
            self.checkpointer,
            self.broker,
            default_ttl=self.thread_ttl.default,
        )
        self.runs = RunService(
            self.db,
            self.broker,
            self.assistants,
            webhook_policy=self.webhook_config.policy,
            default_thread_ttl=self.thread_ttl.default,
        )
        self.run_streams = RunStreams(self.runs, self.broker)
        self.thread_streams = ThreadStreams(self.threads, self.broker)
        self.thread_protocol = ThreadProtocol(self.threads, self.runs, self.broker)
        self.crons = CronService(self.db, self.assistants, self.runs)
        self.store_items = StoreService(self.store, refresh_on_read=self.store_ttl.refresh_on_read)
        self.health = Health(
            self.db, self.broker, self.graphs, redis=settings.redis_uri is not None
        )
        METRICS.describe_process(
            runtime="embedded" if settings.database_uri is None else "postgres",
            slots=settings.n_jobs_per_worker,
        )
        await self.assistants.ensure_system_assistants()
        if settings.n_jobs_per_worker > 0:
            webhooks = WebhookSender(
                self.webhook_config,
                server_url(settings.host, settings.port, mount_prefix(settings)),
            )
            self._exit.push_async_callback(webhooks.close)
            lease = timedelta(seconds=settings.run_lease_seconds)
            executor = RunExecutor(
                self.db,
                self.broker,
                self.graphs,
                self.checkpointer,
                lease=lease,
                timeout_seconds=settings.run_timeout_seconds,
                webhooks=webhooks,
            )
            self.queue = RunQueue(self.db, self.broker, executor, settings.n_jobs_per_worker, lease)
            await self.queue.start()
            self.runs.start_runs_on(self.queue)
            reaper = LeaseReaper(
                self.db,
                self.broker,
                max_attempts=settings.run_max_attempts,
                interval_seconds=settings.run_lease_seconds / 2,
            )
            await reaper.start()
            self._exit.push_async_callback(reaper.stop)
            self.scheduler = CronScheduler(self.crons, settings.cron_scheduler_sleep_seconds)
            await self.scheduler.start()
        self._start_sweepers()

    def _start_sweepers(self) -> None:
        limit = self.thread_ttl.sweep_limit
        sweepers = (
            Sweeper(
                "threads",
                self.thread_ttl.sweep_interval_seconds,
                lambda: self.threads.sweep_expired(limit),
            ),
            Sweeper("store items", self.store_ttl.sweep_interval_seconds, self.store.sweep_ttl),
        )
        for sweeper in sweepers:
            sweeper.start()
            self._exit.push_async_callback(sweeper.stop)

    async def stop(self) -> None:
        # The scheduler first: the runs it starts need the queue.
        if self.scheduler is not None:
            await self.scheduler.stop()
        if self.queue is not None:
            await self.queue.stop(self.settings.shutdown_grace_seconds)
        await self._exit.aclose()
        shutdown_tracing()


def open_broker(settings: Settings) -> Broker:
    """Redis when REDIS_URI is set, so that processes share streams and signals; else in-process."""
    if settings.redis_uri is None:
        return InProcessBroker(
            settings.resumable_stream_ttl_seconds, settings.thread_stream_events_kept
        )
    # Imported only when chosen: the embedded default does without redis (7 MiB).
    from stead.broker.redis import RedisBroker

    return RedisBroker(
        settings.redis_uri,
        key_prefix=settings.redis_key_prefix,
        replay_ttl_seconds=settings.resumable_stream_ttl_seconds,
        thread_events_kept=settings.thread_stream_events_kept,
        max_connections=settings.redis_max_connections,
    )
