"""Agent value_positions: the P&L join of marks (prices, trades, closes) with positions, per symbol."""

from __future__ import annotations

import structlog

from processors.app import app, settings
from processors.clients import outputs, redis
from processors.latency import PROCESSOR_LATENCY
from processors.output_producer import OutputBatch
from processors.pnl_batch import PnLJoiner
from processors.pnl_conflation import PnLConflator
from processors.pnl_projection import PnLProjector
from processors.price_batch import SourceRecord
from processors.subscription_keeper import SubscriptionKeeper
from processors.tables import marks_by_symbol, positions_by_symbol
from processors.topics import pnl_inputs_topic
from schemas.events import PositionPnL
from schemas.timestamps import now_ns
from schemas.topics import PNL, POSITIONS_REJECTED, SUBSCRIPTIONS, position_key

log = structlog.get_logger(__name__)

joiner = PnLJoiner(positions_by_symbol, marks_by_symbol, settings.mark_policy)
conflator = PnLConflator(settings.pnl_min_change, settings.pnl_min_change_bps, settings.pnl_max_delay_ms / 1000)
keeper = SubscriptionKeeper(settings.unsubscribe_grace_seconds)
projector = PnLProjector(redis, trade_ttl_seconds=settings.price_ttl_seconds)


@app.agent(pnl_inputs_topic)
async def value_positions(stream):  # type: ignore[no-untyped-def]
    """Revalue on either side; emit to ``pnl`` and Redis; keep position symbols subscribed."""
    async for events in stream.take_events(settings.processor_batch_size,
                                           within=settings.processor_batch_window_ms / 1000):
        records = [SourceRecord(e.key, e.value or b"", e.message.topic, e.message.partition, e.message.offset)
                   for e in events]
        result = joiner.apply(records)
        sent = outputs.batch()
        for dead in result.rejected:
            log.warning("P&L input rejected", topic=dead.value.source_topic, detail=dead.value.detail)
            await sent.send(POSITIONS_REJECTED.name, dead.key, dead.value.to_json())
        for request in keeper.update(result.opened_symbols, result.emptied_symbols):
            await sent.send(SUBSCRIPTIONS.name, request.symbol.encode(), request.to_json())
        await _emit(conflator.offer(result.valued), sent, result)


async def _emit(valued: list[PositionPnL], sent: OutputBatch, result=None) -> None:  # type: ignore[no-untyped-def]
    for pnl in valued:
        await sent.send(PNL.name, position_key(pnl.account, pnl.symbol).encode(), pnl.to_json())
    if result is None:
        await projector.project(valued)
    else:
        await projector.project(valued, result.positions, result.trades, result.closes)
    await sent.delivered()  # Kafka and Redis round trips overlap; the batch ends when both are done
    PROCESSOR_LATENCY.observe_pnl(valued, now_ns())


@app.timer(interval=max(settings.pnl_max_delay_ms / 2000, 0.05))
async def flush_held_pnl() -> None:
    """Emit conflated revaluations that waited long enough, and unsubscribes past their grace period."""
    sent = outputs.batch()
    for request in keeper.due():
        await sent.send(SUBSCRIPTIONS.name, request.symbol.encode(), request.to_json())
    await _emit(conflator.due(), sent)
