"""Agent price_quotes: quotes.raw -> validation -> latest-price table -> prices / quotes.rejected -> Redis."""

from __future__ import annotations

import time

import structlog

from domain.quotes import QuoteValidator
from domain.records import SourceRecord
from processors.app import app, settings
from processors.clients import outputs, redis
from processors.latency import PROCESSOR_LATENCY
from processors.pnl_service import mark_cadence, pnl_emitter
from processors.price_batch import price_batch
from processors.redis_projection import PriceProjector
from processors.tables import latest_price_by_symbol
from processors.topics import quotes_raw_topic
from schemas.timestamps import NS_PER_SECOND, now_ns
from schemas.topics import PRICES, QUOTES_REJECTED

log = structlog.get_logger(__name__)

validator = QuoteValidator(max_age_ns=int(settings.quote_age_limit_s * NS_PER_SECOND))
projector = PriceProjector(redis, ttl_seconds=settings.price_ttl_s)


@app.agent(quotes_raw_topic)
async def price_quotes(stream):  # type: ignore[no-untyped-def]
    """Process quotes in batches; a batch is acknowledged once Redis has it (its Kafka outputs are confirmed
    before its offsets are committed, see processors/output_producer.py)."""
    async for events in stream.take_events(
        settings.price_batch_max, within=0.05
    ):
        records = [
            SourceRecord(e.key, e.value, e.message.topic, e.message.partition, e.message.offset,
                         int((e.message.timestamp or 0) * NS_PER_SECOND))
            for e in events
        ]
        result = price_batch(records, latest_price_by_symbol, validator)
        processed_ns = now_ns()
        for dead in result.rejected:
            rejected = dead.value
            log.info("quote rejected", symbol=rejected.symbol, reason=str(rejected.reason), detail=rejected.detail)
            # The source key keeps a dead letter in its symbol's partition, in order with its neighbours.
            await outputs.send(QUOTES_REJECTED.name, dead.key, rejected.to_json())
        newest: dict[str, SourceRecord] = {}
        values = [(price.symbol.encode(), price.to_json()) for price in result.prices]
        await outputs.send_many(PRICES.name, values)
        for key, value in values:  # the symbol's newest price of the batch wins
            newest[key.decode()] = SourceRecord(key, value, PRICES.name, -1, -1)
        await projector.project(result.prices, [dead.value for dead in result.rejected])
        PROCESSOR_LATENCY.observe_prices(result.prices, result.appended_ns, processed_ns, now_ns())
        # A symbol's positions are revalued at most once per interval (processors/mark_cadence.py).
        due = mark_cadence.offer(newest, time.monotonic())
        if due:
            await pnl_emitter.apply(due)

