"""PnLStage: positions and marks in, revalued positions out (``pnl``, Redis), symbols kept subscribed.

A :class:`~processors.batch_consumer.BatchConsumer` hands it batches of four bounded-rate inputs, all but the
first keyed by symbol and so co-partitioned (the range assignor gives a member the same partition numbers of
every topic): ``positions`` (keyed account:symbol; validated and re-partitioned by symbol to
``positions.by_symbol``, or dead-lettered), ``positions.by_symbol``, the price stage's conflated marks and
``bars.daily.raw`` (closes).
The join state (positions and marks per symbol) lives in plain dicts for the partitions this member owns;
when it takes a partition over it rebuilds them from compacted topics up to the committed offsets (positions
and closes from the start of ``positions.by_symbol`` and ``bars.daily.raw``, prices from the price stage's
latest-price changelog; trades from the marks topic's recent tail), so a restart or rebalance values every
position as before, however long ago it last changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from aiokafka import ConsumerRecord, TopicPartition
from redis.exceptions import RedisError

from domain.pnl_conflation import PnLConflator
from domain.pnl_join import PnLJoiner
from domain.positions import validate_position
from domain.quotes import Rejection
from domain.records import SourceRecord, dead_letter
from domain.subscription_keeper import SubscriptionKeeper
from processors.hold_timer import HoldTimer
from processors.metrics import ProcessorMetrics
from processors.output_producer import OutputProducer
from processors.pnl_emitter import PnLEmitter
from processors.pnl_projection import PnLProjector
from processors.settings import ProcessorSettings
from processors.topic_reader import newest_by_key, read_ranges
from schemas.events import Position, PreviousClose
from schemas.topics import (
    DAILY_BARS_RAW,
    POSITIONS,
    POSITIONS_BY_SYMBOL,
    POSITIONS_REJECTED,
    latest_price_changelog,
    marks_topic,
    position_key,
)

log = structlog.get_logger(__name__)

Json = dict[str, Any]
TRADE_RESTORE_WINDOW = 5_000  # marks read back per partition for the newest trade of each symbol (``last`` policy)
REASSERT_EVERY_S = 10.0  # a flushed or restarted Redis gets positions, accounts and closes back within this


def pnl_input_topics(settings: ProcessorSettings) -> list[str]:
    """What the P&L stage consumes."""
    return [POSITIONS.name, POSITIONS_BY_SYMBOL.name, marks_topic(settings.processor_app_id), DAILY_BARS_RAW.name]


class PnLStage:
    """The P&L stage's batch handler: one per worker process."""

    def __init__(self, settings: ProcessorSettings, projector: PnLProjector, outputs: OutputProducer,
                 metrics: ProcessorMetrics) -> None:
        self.settings = settings
        self.outputs = outputs
        self.positions_by_symbol: dict[str, Json] = {}
        self.marks_by_symbol: dict[str, Json] = {}
        self.partition_of: dict[str, int] = {}  # symbol -> its partition, to forget it when revoked
        self.emitter = PnLEmitter(
            PnLJoiner(self.positions_by_symbol, self.marks_by_symbol, settings.mark_policy),
            PnLConflator(settings.pnl_min_change, settings.pnl_min_change_bps, settings.pnl_max_delay_s),
            SubscriptionKeeper(settings.unsubscribe_grace_s), projector, outputs, metrics)
        self.marks_topic = marks_topic(settings.processor_app_id)
        self.changelog_topic = latest_price_changelog(settings.processor_app_id)
        # Held revaluations and unsubscribes go out at most half their delay late.
        self.release_timer = HoldTimer(max(settings.pnl_max_delay_s / 2, 0.05), self.emitter.holding,
                                       self.emitter.flush_held)

    # --- BatchHandler ----------------------------------------------------------------------------

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Re-key new positions; apply the rest to the join and emit what changed (Redis has it on return)."""
        joined: list[SourceRecord] = []
        for r in records:
            if r.topic == POSITIONS.name:
                await self._rekey(r)  # a tombstone (value None) closes the position
            else:
                joined.append(SourceRecord(r.key, r.value or b"", r.topic, r.partition, r.offset))
                if r.key:
                    self.partition_of[_symbol_of(r.key)] = r.partition
        if joined:
            await self.emitter.apply(joined)
            if self.emitter.holding():
                self.release_timer.wake()

    async def before_commit(self) -> None:
        """Every output sent so far is acknowledged (re-keyed positions, dead letters, pnl, subscriptions)."""
        await self.outputs.flush()

    async def on_outputs_lost(self) -> None:
        """Redis has every revaluation, but ``pnl`` may have lost some: the next one of every position goes out,
        changed or not (reprocessed inputs the join already holds revalue nothing)."""
        self.emitter.conflator.forget_emitted()

    async def on_assigned(self, partitions: set[TopicPartition], committed: dict[TopicPartition, int]) -> None:
        """Rebuild the join state of partitions taken over at a committed offset (from the start: nothing to do)."""
        known = set(self.partition_of.values())
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
        for record in records:
            if record.key:
                self.partition_of[_symbol_of(record.key)] = record.partition
        restored = self.emitter.joiner.apply(records)  # state only: what it values is emitted on the next change
        log.info("P&L state restored", partitions=sorted({tp.partition for tp in state}), records=len(records),
                 positions=sum(len(book) for book in self.positions_by_symbol.values()),
                 rejected=len(restored.rejected))

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Forget the symbols of partitions another member owns now."""
        gone_partitions = {tp.partition for tp in partitions if tp.topic == POSITIONS_BY_SYMBOL.name}
        gone = [symbol for symbol, partition in self.partition_of.items() if partition in gone_partitions]
        for symbol in gone:
            self.positions_by_symbol.pop(symbol, None)
            self.marks_by_symbol.pop(symbol, None)
            del self.partition_of[symbol]

    # --- timers and re-keying --------------------------------------------------------------------

    async def release_held(self, stop: asyncio.Event) -> None:
        """Emit conflated revaluations and unsubscribes once due (cancelled at ``stop``)."""
        await self.release_timer.run()

    async def reassert_projection(self, stop: asyncio.Event) -> None:
        """Every REASSERT_EVERY_S, write the owned positions, accounts and closes to Redis again."""
        while not stop.is_set():
            await asyncio.sleep(REASSERT_EVERY_S)  # the re-assert period
            positions = [Position.model_validate(raw) for book in list(self.positions_by_symbol.values())
                         for raw in book.values()]
            closes = [PreviousClose.model_validate(entry["close"]) for entry in list(self.marks_by_symbol.values())
                      if entry.get("close")]
            try:
                await self.emitter.projector.reassert(positions, closes)
            except (RedisError, OSError) as exc:
                log.warning("cannot re-assert positions and closes in Redis, will retry", error=str(exc))

    async def _rekey(self, record: ConsumerRecord) -> None:
        """positions -> positions.by_symbol (same key, partitioned by symbol), so the join sees it by symbol."""
        outcome = validate_position(record.key, record.value)
        if isinstance(outcome, Rejection):
            source = SourceRecord(record.key, record.value or b"", record.topic, record.partition, record.offset)
            dead = dead_letter(source, outcome)
            log.warning("position rejected", key=record.key, reason=str(outcome.reason), detail=outcome.detail)
            await self.outputs.send(POSITIONS_REJECTED.name, dead.key, dead.value.to_json())
            return
        await self.outputs.send(POSITIONS_BY_SYMBOL.name, position_key(outcome.account, outcome.symbol).encode(),
                                outcome.to_json(), partition_key=outcome.symbol.encode())


def _symbol_of(key: bytes) -> str:
    """The symbol of an input's key: a symbol, or ``account:symbol`` on positions.by_symbol."""
    return key.decode("utf-8", "replace").rpartition(":")[2]
