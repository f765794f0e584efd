"""The processor process (``tickwire processor``): the price stage and the P&L stage, built from settings.

Each stage is a consumer-group member on aiokafka's batch API (:class:`~processors.batch_consumer.BatchConsumer`):
the price stage in group ``TICKWIRE_PROCESSOR_APP_ID`` over ``quotes.raw`` (and ``trades.raw`` for the
``last`` mark policy), the P&L stage in group ``{app_id}-pnl`` over positions, marks and closes. Run more
processes to share the partitions; ``TICKWIRE_PROCESSOR_STAGES`` runs one stage per process if wanted.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from processors.batch_consumer import BatchConsumer, BatchHandler
from processors.metrics import ProcessorMetrics, serve_metrics
from processors.output_producer import OutputProducer
from processors.pnl_projection import PnLProjector
from processors.pnl_stage import PnLStage, pnl_input_topics
from processors.price_stage import PriceStage
from processors.progress import ProgressReporter
from processors.redis_projection import PriceProjector
from processors.settings import ProcessorSettings
from schemas.topics import ALL_TOPICS, QUOTES_RAW, TRADES_RAW, internal_topics
from tickwire.errors import ConfigurationError
from tickwire.kafka import aiokafka_security, bootstrap_list
from tickwire.logging import quiet_library_logs
from tickwire.topic_admin import ensure_topics_of

log = structlog.get_logger(__name__)

# A dead member's partitions move after the session timeout: 6 s keeps failover near 5-10 s.
SESSION_TIMEOUT_MS = 6_000
HEARTBEAT_MS = 1_000


@dataclass
class Stage:
    """One stage: its consumer loop, the handler it drives and the tasks beside it (timers, progress)."""

    name: str
    batch: BatchConsumer
    handler: BatchHandler
    sidecars: list[Callable[[asyncio.Event], Awaitable[None]]] = field(default_factory=list)


@dataclass
class Processor:
    """Everything one processor process runs, with the clients it owns."""

    settings: ProcessorSettings
    redis: Redis
    outputs: OutputProducer
    metrics: ProcessorMetrics
    stages: list[Stage]

    async def run(self, stop: asyncio.Event) -> None:
        """Create missing topics, run every stage until ``stop``, then commit, flush and disconnect."""
        settings = self.settings
        try:
            with quiet_library_logs("aiokafka"):  # a refused connection is one error line (the CLI's), not three
                await ensure_topics_of(settings, (*ALL_TOPICS, *internal_topics(settings.processor_app_id)))
                for stage in self.stages:
                    await stage.batch.consumer.start()
            async with asyncio.TaskGroup() as tasks:
                for stage in self.stages:
                    tasks.create_task(stage.batch.run(stop), name=f"{stage.name} consumer")
                    for sidecar in stage.sidecars:
                        tasks.create_task(_until(stop, sidecar), name=f"{stage.name} {sidecar.__name__}")
                log.info("processor running", stages=[s.name for s in self.stages])
        finally:
            for stage in self.stages:  # started or not: each owns a client to close
                with contextlib.suppress(Exception):
                    await stage.batch.consumer.stop()
            await self.outputs.stop()
            await self.redis.aclose()


def build_processor(settings: ProcessorSettings, registry: CollectorRegistry | None = None) -> Processor:
    """The processor of ``settings``: clients, metrics and the stages it names (nothing connects until run)."""
    if not settings.kafka_bootstrap_servers:
        raise ConfigurationError("KAFKA_BOOTSTRAP_SERVERS is not set: name the brokers (example: localhost:9092), "
                                 "or start everything with `tickwire run`")
    redis = Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0", health_check_interval=10)
    outputs = OutputProducer(settings)
    metrics = ProcessorMetrics(registry or CollectorRegistry())
    stages: list[Stage] = []
    if "price" in settings.stages:
        price = PriceStage(settings, PriceProjector(redis, ttl_seconds=settings.price_ttl_s), outputs, metrics)
        topics = [QUOTES_RAW.name] + ([TRADES_RAW.name] if settings.mark_policy == "last" else [])
        batch = _batch_consumer(settings, price, topics, settings.processor_app_id, "price", settings.fetch_wait_s)
        reporter = ProgressReporter(redis, batch.consumer, batch.done, settings.processor_app_id, QUOTES_RAW.name,
                                    metrics, "price")
        stages.append(Stage("price", batch, price, [price.release_due_marks, _reporting(reporter)]))
    if "pnl" in settings.stages:
        pnl = PnLStage(settings, PnLProjector(redis, trade_ttl_seconds=settings.price_ttl_s), outputs, metrics)
        batch = _batch_consumer(settings, pnl, pnl_input_topics(settings), f"{settings.processor_app_id}-pnl", "pnl",
                                settings.pnl_fetch_wait_s)
        stages.append(Stage("pnl", batch, pnl, [pnl.release_held, pnl.reassert_projection]))
    return Processor(settings, redis, outputs, metrics, stages)


def _batch_consumer(settings: ProcessorSettings, handler: BatchHandler, topics: list[str], group: str,
                    name: str, fetch_wait_s: float) -> BatchConsumer:
    assert settings.kafka_bootstrap_servers
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_list(settings.kafka_bootstrap_servers), group_id=group,
        enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=round(fetch_wait_s * 1000),
        session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_MS,
        # Range gives a member the same partition numbers of every topic: the P&L join's co-partitioning.
        partition_assignment_strategy=(RangePartitionAssignor,),
        **aiokafka_security(settings),
    )
    return BatchConsumer(consumer, handler, topics=topics, max_records=settings.price_batch_max,
                         commit_interval_s=settings.commit_interval_s, name=name)


def _reporting(reporter: ProgressReporter) -> Callable[[asyncio.Event], Awaitable[None]]:
    async def report_progress(stop: asyncio.Event) -> None:
        await reporter.run()
    return report_progress


async def _until(stop: asyncio.Event, sidecar: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run a sidecar until ``stop`` (cancelled then, if it is still waiting)."""
    task = asyncio.ensure_future(sidecar(stop))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    for pending in (task, stopping):
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


async def run_processor(settings: ProcessorSettings) -> None:
    """Build and run the processor until SIGINT/SIGTERM, serving its metrics."""
    registry = CollectorRegistry()
    serve_metrics(registry, settings.processor_metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await build_processor(settings, registry).run(stop)


def main(settings: ProcessorSettings) -> None:
    """Entry point of ``tickwire processor``: logging, uvloop, a frozen start-up heap, then run."""
    from tickwire.heap import freeze_startup_heap
    from tickwire.logging import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    log.info("processor settings", settings=settings.redacted())
    freeze_startup_heap()  # full collections paused the worker 70-120 ms each; 10-17 ms frozen
    if settings.processor_uvloop:
        import uvloop
        uvloop.run(run_processor(settings))  # 10-30% less CPU per Redis/Kafka round trip than asyncio's loop
    else:
        asyncio.run(run_processor(settings))
