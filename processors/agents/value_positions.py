"""Agent value_positions: positions, closes and trades into the P&L join (prices come from price_quotes)."""

from __future__ import annotations

from domain.records import SourceRecord
from processors.app import app, settings
from processors.pnl_service import pnl_emitter, release_marks
from processors.topics import pnl_inputs_topic


@app.agent(pnl_inputs_topic)
async def value_positions(stream):  # type: ignore[no-untyped-def]
    """Revalue on a position change or a new close (or trade); emit to ``pnl`` and Redis; keep symbols subscribed."""
    async for events in stream.take_events(settings.price_batch_max,
                                           within=0.05):
        records = [SourceRecord(e.key, e.value or b"", e.message.topic, e.message.partition, e.message.offset)
                   for e in events]
        await pnl_emitter.apply(records)


@app.timer(interval=max(settings.pnl_max_delay_s / 2, 0.05))
async def flush_held_pnl() -> None:
    """Emit conflated revaluations that waited long enough, and unsubscribes past their grace period."""
    await pnl_emitter.flush_held()


@app.timer(interval=max(settings.pnl_mark_interval_s / 2, 0.01))
async def release_due_marks() -> None:
    """Revalue symbols whose newest price was held back by the mark cadence once their interval passed."""
    await release_marks()
