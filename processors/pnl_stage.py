"""PnLStage: positions and marks in, revalued positions out (``pnl``, Redis), symbols kept subscribed.

A :class:`~tickwire.runtime.member.BatchConsumer` hands it batches of four bounded-rate inputs, all but the
first keyed by symbol and so co-partitioned (the range assignor gives a member the same partition numbers of
every topic): ``positions`` (keyed account:symbol; validated and re-partitioned by symbol to
``positions.by_symbol``, or dead-lettered), ``positions.by_symbol``, the price stage's conflated marks and
``bars.daily.raw`` (closes). The pure work is the :class:`~domain.pnl_handler.PnLHandler`'s; this side sends
what it produced, each batch and each timer release under one lock, so revaluations reach Redis in the order
they were computed.
The join state (positions and marks per symbol) lives in plain dicts for the partitions this member owns;
when it takes a partition over it rebuilds them from compacted topics up to the committed offsets (positions
and closes from the start of ``positions.by_symbol`` and ``bars.daily.raw``, prices from the price stage's
latest-price changelog; trades from the marks topic's recent tail), so a restart or rebalance values every
position as before, however long ago it last changed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from aiokafka import ConsumerRecord, TopicPartition
from redis.exceptions import RedisError

from domain.pnl_handler import PnLBatch, PnLHandler
from domain.pnl_payloads import PnLPayloads
from domain.records import SourceRecord
from processors.pnl_projection import PnLProjector
from schemas.events import Position, PreviousClose
from schemas.timestamps import now_ns
from schemas.topics import (
    DAILY_BARS_RAW,
    PNL,
    POSITIONS_BY_SYMBOL,
    POSITIONS_REJECTED,
    SUBSCRIPTIONS,
    latest_price_changelog,
    marks_topic,
    subscription_key,
)
from tickwire.runtime.member import BatchConsumer
from tickwire.runtime.restore import newest_by_key, read_ranges
from tickwire.runtime.stage import StageBase
from tickwire.runtime.timers import HoldTimer, Sidecar

if TYPE_CHECKING:
    from processors.registry import StageContext

log = structlog.get_logger(__name__)

TRADE_RESTORE_WINDOW = 5_000  # marks read back per partition for the newest trade of each symbol (``last`` policy)
REASSERT_EVERY_S = 10.0  # a flushed or restarted Redis gets positions, accounts and closes back within this


def pnl_handler(ctx: StageContext) -> PnLHandler:
    """The P&L stage's pure handler as ``ctx`` configures it; a replay joins positions at once and emits every
    change (nothing is held back in a run that ends when its range does)."""
    settings = ctx.settings
    if ctx.replay:
        return PnLHandler(settings.mark_policy, rekey=False)
    return PnLHandler(settings.mark_policy, settings.pnl_min_change, settings.pnl_min_change_bps,
                      settings.pnl_max_delay_s, settings.unsubscribe_grace_s)


class PnLStage(StageBase):
    """The P&L stage's I/O side: one per worker process (or per replay run)."""

    def __init__(self, ctx: StageContext, handler: PnLHandler) -> None:
        super().__init__(ctx.outputs)
        settings = self.settings = ctx.settings
        self.metrics = ctx.metrics
        self.handler = handler
        self.projector = PnLProjector(ctx.redis, trade_ttl_seconds=settings.price_ttl_s, namespace=ctx.namespace,
                                      stream_maxlen=settings.redis_stream_maxlen)
        self.payloads = PnLPayloads()
        self.marks_topic = marks_topic(settings.processor_app_id)
        self.changelog_topic = latest_price_changelog(settings.processor_app_id)
        self._lock = asyncio.Lock()
        # Held revaluations and unsubscribes go out at most half their delay late.
        self.release_timer = HoldTimer(max(settings.pnl_max_delay_s / 2, 0.05), self.handler.holding,
                                       self._release_held)

    def sidecars(self, member: BatchConsumer) -> list[Sidecar]:
        """The release timer and the periodic re-assert of positions and closes in Redis."""
        return [self.release_timer.run_sidecar, self.reassert_projection]

    # --- BatchHandler ----------------------------------------------------------------------------

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Re-key new positions; apply the rest to the join and emit what changed (Redis has it on return)."""
        sources = [SourceRecord(r.key, r.value or b"", r.topic, r.partition, r.offset, 0, r.value is None)
                   for r in records]
        async with self._lock:
            await self._emit(self.handler.handle(sources, time.monotonic()))
        if self.handler.holding():
            self.release_timer.wake()

    async def on_outputs_lost(self) -> None:
        """Redis has every revaluation, but ``pnl`` may have lost some: the next one of every position goes out,
        changed or not (reprocessed inputs the join already holds revalue nothing)."""
        self.handler.conflator.forget_emitted()

    async def on_assigned(self, partitions: set[TopicPartition], committed: dict[TopicPartition, int]) -> None:
        """Rebuild the join state of partitions taken over at a committed offset (from the start: nothing to do)."""
        known = set(self.handler.partition_of.values())
        ranges: dict[TopicPartition, tuple[int, int | None]] = {}
        for tp in partitions:
            stop = committed.get(tp)
            if tp.partition in known or not stop:
                continue
            if tp.topic in (POSITIONS_BY_SYMBOL.name, DAILY_BARS_RAW.name):
                ranges[tp] = (0, stop)
            elif tp.topic == self.marks_topic:
                ranges[TopicPartition(self.changelog_topic, tp.partition)] = (0, None)
                ranges[tp] = (max(0, stop - TRADE_RESTORE_WINDOW), stop)
        if not ranges:
            return
        state = await read_ranges(self.settings, ranges)
        # Prices first (the changelog), then the marks' tail: the join keeps the newest of each per symbol.
        order = sorted(state, key=lambda tp: (tp.topic != self.changelog_topic, tp.topic, tp.partition))
        records: list[SourceRecord] = []
        for tp in order:
            if tp.topic == self.changelog_topic:
                kept = newest_by_key(state[tp]).items()
                records.extend(SourceRecord(k, v, self.marks_topic, tp.partition, -1) for k, v in kept)
            else:
                records.extend(SourceRecord(r.key, r.value or b"", r.topic, r.partition, r.offset) for r in state[tp])
        restored = self.handler.restore(records)  # state only: what it values is emitted on the next change
        log.info("P&L state restored", partitions=sorted({tp.partition for tp in state}), records=len(records),
                 positions=sum(len(book) for book in self.handler.positions_by_symbol.values()),
                 rejected=len(restored.rejected))

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Forget the symbols of partitions another member owns now."""
        self.handler.forget_partitions({tp.partition for tp in partitions if tp.topic == POSITIONS_BY_SYMBOL.name})

    # --- emitting ----------------------------------------------------------------------------------

    async def _release_held(self) -> None:
        async with self._lock:
            await self._emit(self.handler.due(time.monotonic()))

    async def _emit(self, batch: PnLBatch) -> None:
        """Send what a batch or a release produced; returns once Redis has it (Kafka: before the commit)."""
        outputs = self.outputs
        if batch.rejected:
            self.metrics.pnl_rejected.inc(len(batch.rejected))
            for dead in batch.rejected:
                log.warning("P&L input rejected", topic=dead.value.source_topic, key=dead.key,
                            reason=str(dead.value.reason), detail=dead.value.detail)
            await outputs.send_many(POSITIONS_REJECTED.name, [(d.key, d.value.to_json()) for d in batch.rejected])
        for key, value, partition_key in batch.rekeyed:  # positions.by_symbol: same key, partitioned by symbol
            await outputs.send(POSITIONS_BY_SYMBOL.name, key, value, partition_key=partition_key)
        for request in batch.subscriptions:
            await outputs.send(SUBSCRIPTIONS.name, subscription_key(request.source, request.symbol).encode(),
                               request.to_json())
        valued = batch.valued
        keys, payloads = self.payloads(valued)  # one serialisation for Kafka and Redis
        await outputs.send_many(PNL.name, zip(keys, payloads, strict=True))
        await self.projector.project(valued, batch.positions, batch.trades, batch.closes, payloads)
        self.metrics.latency.observe_valuations(valued, now_ns())
        self.metrics.revaluations.inc(len(valued))

    async def reassert_projection(self, stop: asyncio.Event) -> None:
        """Every REASSERT_EVERY_S, write the owned positions, accounts and closes to Redis again."""
        while not stop.is_set():
            await asyncio.sleep(REASSERT_EVERY_S)  # the re-assert period
            positions = [Position.model_validate(raw) for book in list(self.handler.positions_by_symbol.values())
                         for raw in book.values()]
            closes = [PreviousClose.model_validate(entry["close"])
                      for entry in list(self.handler.marks_by_symbol.values()) if entry.get("close")]
            try:
                await self.projector.reassert(positions, closes)
            except (RedisError, OSError) as exc:
                log.warning("cannot re-assert positions and closes in Redis, will retry", error=str(exc))
