"""PriceStage: the firehose. ``quotes.raw`` -> validated prices -> ``prices``, ``quotes.rejected``, marks, Redis.

A :class:`~tickwire.runtime.member.BatchConsumer` hands it whatever each fetch returned. Per batch: the
:class:`~domain.price_handler.PriceHandler` validates and prices it (pure), the outputs are queued on
the batched producer (never awaited inline), and the Redis projection (one pipeline per batch) is awaited,
so a batch is done once Redis has it. Before each offset commit: every held mark goes out, the changed
symbols' latest prices go to the table's changelog, and every output is acknowledged (the commit rule).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from aiokafka import ConsumerRecord, TopicPartition

from domain.price_handler import MarkRecord, PriceHandler
from domain.quotes import QuoteValidator
from domain.records import SourceRecord
from processors.redis_projection import PriceProjector
from schemas.timestamps import NS_PER_SECOND, now_ns
from schemas.topics import LATEST_PRICE_TABLE, PRICES, QUOTES_RAW, QUOTES_REJECTED, marks_topic
from tickwire.runtime.member import BatchConsumer
from tickwire.runtime.progress import ProgressReporter
from tickwire.runtime.stage import StageBase
from tickwire.runtime.timers import HoldTimer, Sidecar

if TYPE_CHECKING:
    from processors.registry import StageContext

log = structlog.get_logger(__name__)


def price_handler(ctx: StageContext) -> PriceHandler:
    """The price stage's pure handler as ``ctx`` configures it, keeping its latest prices in the stage's table."""
    settings = ctx.settings
    return PriceHandler(QuoteValidator(max_age_ns=int(settings.quote_age_limit_s * NS_PER_SECOND)),
                        settings.mark_policy, settings.pnl_mark_interval_s, ctx.tables[LATEST_PRICE_TABLE])


class PriceStage(StageBase):
    """The price stage's I/O side: one per worker process (or per replay run)."""

    def __init__(self, ctx: StageContext, handler: PriceHandler) -> None:
        super().__init__(ctx.outputs)
        settings = self.settings = ctx.settings
        self.redis = ctx.redis
        self.projector = PriceProjector(ctx.redis, ttl_seconds=settings.price_ttl_s, namespace=ctx.namespace,
                                        stream_maxlen=settings.redis_stream_maxlen)
        self.metrics = ctx.metrics
        self.latest = ctx.tables[LATEST_PRICE_TABLE]
        self.handler = handler
        self.marks_topic = marks_topic(settings.processor_app_id)
        # Held marks are due at most half an interval late.
        self.mark_timer = HoldTimer(max(settings.pnl_mark_interval_s / 2, 0.005), lambda: self.handler.cadence.held > 0,
                                    self._release_due_marks)

    def sidecars(self, member: BatchConsumer) -> list[Sidecar]:
        """The mark timer, and the progress per ``quotes.raw`` partition that /health reads."""
        reporter = ProgressReporter(self.redis, member.consumer, member.done, self.settings.processor_app_id,
                                    QUOTES_RAW.name, self.metrics.lag_of("price"))
        return [self.mark_timer.run_sidecar, reporter.run_sidecar]

    # --- BatchHandler ----------------------------------------------------------------------------

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Price one batch; returns once Redis has it (Kafka outputs are confirmed before the commit)."""
        sources = [SourceRecord(r.key, r.value or b"", r.topic, r.partition, r.offset, r.timestamp * 1_000_000)
                   for r in records]
        batch = self.handler.handle(sources, time.monotonic())
        processed_ns = now_ns()
        if self.handler.cadence.held:
            self.mark_timer.wake()
        outputs = self.outputs
        if batch.rejected:
            for dead in batch.rejected:
                value = dead.value
                log.info("quote rejected", symbol=value.symbol, reason=str(value.reason), detail=value.detail)
                self.metrics.rejected_by_reason.labels(str(value.reason)).inc()
            # The source key keeps a dead letter in its symbol's partition, in order with its neighbours.
            await outputs.send_many(QUOTES_REJECTED.name, [(d.key, d.value.to_json()) for d in batch.rejected])
            self.metrics.rejected.inc(len(batch.rejected))
        if batch.prices:
            await outputs.send_many(PRICES.name, [(p.symbol.encode(), p.event) for p in batch.payloads])
            self.metrics.accepted.inc(len(batch.prices))
        await self._send_marks(batch.marks)
        await self.projector.project(batch.payloads, [dead.value for dead in batch.rejected])
        self.metrics.latency.observe_priced(batch.prices, batch.appended_ns, processed_ns, now_ns())

    async def before_commit(self) -> None:
        """Every held mark and changed latest price is sent; then every output is acknowledged."""
        await self._send_marks(self.handler.due_marks(time.monotonic(), all_held=True))
        changed = self.latest.changelog_records()
        if changed:
            await self.outputs.send_many(self.latest.changelog, changed)
        await self.outputs.flush()

    async def on_outputs_lost(self) -> None:
        """Reprocessing sends no price the latest-price table already holds: send each owned symbol's newest
        price, mark and changelog value again, so ``prices``, the P&L stage and a takeover converge."""
        await self.outputs.send_many(PRICES.name, self.latest.records())
        self.latest.mark_all_changed()  # the changelog gets them before the commit
        await self._send_marks(list(self.handler.newest_marks.values()))

    async def on_assigned(self, partitions: set[TopicPartition], committed: dict[TopicPartition, int]) -> None:
        """Restore the latest prices of new partitions from the changelog (its partitions match quotes.raw's)."""
        mine = {tp.partition for tp in partitions if tp.topic == QUOTES_RAW.name}
        new = mine - set(self.handler.partition_of.values())
        if new:
            self.handler.partition_of.update(await self.latest.restore_partitions(self.settings, new))

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Forget the symbols of partitions another worker owns now."""
        self.handler.forget_partitions({tp.partition for tp in partitions if tp.topic == QUOTES_RAW.name})

    # --- marks -----------------------------------------------------------------------------------

    async def _release_due_marks(self) -> None:
        await self._send_marks(self.handler.due_marks(time.monotonic()))

    async def _send_marks(self, marks: list[MarkRecord]) -> None:
        if marks:
            await self.outputs.send_many(self.marks_topic, marks)
            self.metrics.marks.inc(len(marks))
