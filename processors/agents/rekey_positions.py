"""Agent rekey_positions: positions (key account:symbol) -> positions.by_symbol (key symbol), validated."""

from __future__ import annotations

import structlog

from domain.positions import validate_position
from domain.quotes import Rejection
from domain.records import SourceRecord, dead_letter
from processors.app import app, settings
from processors.clients import outputs
from processors.topics import positions_topic
from schemas.topics import POSITIONS_BY_SYMBOL, POSITIONS_REJECTED

log = structlog.get_logger(__name__)


@app.agent(positions_topic)
async def rekey_positions(stream):  # type: ignore[no-untyped-def]
    """Re-key by symbol so positions are co-partitioned with prices (the P&L join needs both in one worker)."""
    async for events in stream.take_events(settings.price_batch_max,
                                           within=0.05):
        for event in events:
            outcome = validate_position(event.key, event.value)
            if isinstance(outcome, Rejection):
                record = SourceRecord(event.key, event.value or b"", event.message.topic, event.message.partition,
                                      event.message.offset)
                dead = dead_letter(record, outcome)
                log.warning("position rejected", key=event.key, reason=str(outcome.reason), detail=outcome.detail)
                await outputs.send(POSITIONS_REJECTED.name, dead.key, dead.value.to_json())
                continue
            await outputs.send(POSITIONS_BY_SYMBOL.name, outcome.symbol.encode(), outcome.to_json())
