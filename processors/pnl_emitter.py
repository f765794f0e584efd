"""PnLEmitter: applies P&L inputs to the join and emits what changed (dead letters, subscriptions, revaluations).

The P&L stage hands it each batch of marks, positions and closes, and a timer the conflated revaluations
that waited long enough; each is applied and emitted under one lock, so revaluations reach Redis in the
order they were computed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from domain.pnl_conflation import PnLConflator
from domain.pnl_join import PnLBatchResult, PnLJoiner
from domain.pnl_payloads import PnLPayloads
from domain.records import SourceRecord
from domain.subscription_keeper import SubscriptionKeeper
from domain.valuation import PositionValuation
from processors.metrics import ProcessorMetrics
from processors.output_producer import OutputProducer
from processors.pnl_projection import PnLProjector
from schemas.timestamps import now_ns
from schemas.topics import PNL, POSITIONS_REJECTED, SUBSCRIPTIONS, subscription_key

log = structlog.get_logger(__name__)


class PnLEmitter:
    """One per worker: the join, its conflation, the subscription keeper and the Redis projection."""

    def __init__(self, joiner: PnLJoiner, conflator: PnLConflator, keeper: SubscriptionKeeper,
                 projector: PnLProjector, outputs: OutputProducer, metrics: ProcessorMetrics) -> None:
        self.outputs = outputs
        self.metrics = metrics
        self.joiner = joiner
        self.conflator = conflator
        self.keeper = keeper
        self.projector = projector
        self.payloads = PnLPayloads()
        self._lock = asyncio.Lock()

    async def apply(self, records: Sequence[SourceRecord]) -> None:
        """Apply a batch and emit its consequences; returns once Redis has them (Kafka: see OutputProducer)."""
        async with self._lock:
            result = self.joiner.apply(records)
            self.metrics.pnl_rejected.inc(len(result.rejected))
            for dead in result.rejected:
                log.warning("P&L input rejected", topic=dead.value.source_topic, detail=dead.value.detail)
                await self.outputs.send(POSITIONS_REJECTED.name, dead.key, dead.value.to_json())
            for request in self.keeper.update(result.opened_symbols, result.emptied_symbols):
                await self.outputs.send(SUBSCRIPTIONS.name, subscription_key(request.source, request.symbol).encode(),
                                        request.to_json())
            await self._emit(self.conflator.offer(result.valued), result)

    def holding(self) -> bool:
        """Whether revaluations or unsubscribes are held back (:meth:`flush_held` has work)."""
        return bool(self.conflator.held or self.keeper.pending)

    async def flush_held(self) -> None:
        """Emit conflated revaluations that waited long enough, and unsubscribes past their grace period."""
        async with self._lock:
            for request in self.keeper.due():
                await self.outputs.send(SUBSCRIPTIONS.name, subscription_key(request.source, request.symbol).encode(),
                                        request.to_json())
            await self._emit(self.conflator.due(), None)

    async def _emit(self, valued: list[PositionValuation], result: PnLBatchResult | None) -> None:
        keys, payloads = self.payloads(valued)  # one serialisation for Kafka and Redis
        await self.outputs.send_many(PNL.name, zip(keys, payloads, strict=True))
        if result is None:
            await self.projector.project(valued, payloads=payloads)
        else:
            await self.projector.project(valued, result.positions, result.trades, result.closes, payloads)
        self.metrics.latency.observe_valuations(valued, now_ns())
        self.metrics.revaluations.inc(len(valued))
