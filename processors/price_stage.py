"""PriceStage: the firehose. ``quotes.raw`` -> validated prices -> ``prices``, ``quotes.rejected``, marks, Redis.

A :class:`~processors.batch_consumer.BatchConsumer` hands it whatever each fetch returned. Per batch: the
:class:`~domain.price_handler.PriceHandler` validates and prices it (pure), the outputs are queued on
the batched producer (never awaited inline), and the Redis projection (one pipeline per batch) is awaited,
so a batch is done once Redis has it. Before each offset commit: every held mark goes out, the changed
symbols' latest prices go to the changelog, and every output is acknowledged (the commit rule).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import orjson
import structlog
from aiokafka import ConsumerRecord, TopicPartition

from domain.price_handler import MarkRecord, PriceHandler
from domain.quotes import QuoteValidator
from domain.records import SourceRecord
from processors.hold_timer import HoldTimer
from processors.latest_prices import LatestPrices
from processors.metrics import ProcessorMetrics
from processors.output_producer import OutputProducer
from processors.redis_projection import PriceProjector
from processors.settings import ProcessorSettings
from processors.topic_reader import newest_by_key, read_ranges
from schemas.timestamps import NS_PER_SECOND, now_ns
from schemas.topics import PRICES, QUOTES_RAW, QUOTES_REJECTED, latest_price_changelog, marks_topic

log = structlog.get_logger(__name__)


class PriceStage:
    """The price stage's batch handler: one per worker process."""

    def __init__(self, settings: ProcessorSettings, projector: PriceProjector, outputs: OutputProducer,
                 metrics: ProcessorMetrics) -> None:
        self.settings = settings
        self.projector = projector
        self.outputs = outputs
        self.metrics = metrics
        self.latest = LatestPrices()
        self.handler = PriceHandler(QuoteValidator(max_age_ns=int(settings.quote_age_limit_s * NS_PER_SECOND)),
                                    settings.mark_policy, settings.pnl_mark_interval_s, self.latest)
        self.marks_topic = marks_topic(settings.processor_app_id)
        self.changelog_topic = latest_price_changelog(settings.processor_app_id)
        # Held marks are due at most half an interval late.
        self.mark_timer = HoldTimer(max(settings.pnl_mark_interval_s / 2, 0.005), lambda: self.handler.cadence.held > 0,
                                    self._release_due_marks)

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
        changed = self.latest.take_changed()
        if changed:
            await self.outputs.send_many(self.changelog_topic,
                                         [(symbol.encode(), orjson.dumps(value)) for symbol, value in changed.items()])
        await self.outputs.flush()

    async def on_outputs_lost(self) -> None:
        """Reprocessing sends no price the latest-price table already holds: send each owned symbol's newest
        price, mark and changelog value again, so ``prices``, the P&L stage and a takeover converge."""
        latest = dict(self.latest.items())
        await self.outputs.send_many(PRICES.name, [(s.encode(), orjson.dumps(v)) for s, v in latest.items()])
        self.latest.update(latest)  # written again: marked changed, so the changelog gets them before the commit
        await self._send_marks(list(self.handler.newest_marks.values()))

    async def on_assigned(self, partitions: set[TopicPartition], committed: dict[TopicPartition, int]) -> None:
        """Restore the latest prices of new partitions from the changelog (its partitions match quotes.raw's)."""
        mine = {tp.partition for tp in partitions if tp.topic == QUOTES_RAW.name}
        known = set(self.handler.partition_of.values())
        new = mine - known
        if not new:
            return
        state = await read_ranges(self.settings, {TopicPartition(self.changelog_topic, p): (0, None) for p in new})
        for tp, records in state.items():
            for key, value in newest_by_key(records).items():
                restored = _json_object(value)
                if restored is not None:
                    self.latest.restore([restored])
                    self.handler.partition_of[key.decode("utf-8", "replace")] = tp.partition

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        """Forget the symbols of partitions another worker owns now."""
        self.handler.forget_partitions({tp.partition for tp in partitions if tp.topic == QUOTES_RAW.name})

    # --- marks -----------------------------------------------------------------------------------

    async def release_due_marks(self, stop: asyncio.Event) -> None:
        """Send held marks once their symbol's interval has passed (cancelled at ``stop``)."""
        await self.mark_timer.run()

    async def _release_due_marks(self) -> None:
        await self._send_marks(self.handler.due_marks(time.monotonic()))

    async def _send_marks(self, marks: list[MarkRecord]) -> None:
        if marks:
            await self.outputs.send_many(self.marks_topic, marks)
            self.metrics.marks.inc(len(marks))


def _json_object(value: bytes) -> dict[str, Any] | None:
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, dict) else None
