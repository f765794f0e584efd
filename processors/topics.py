"""Faust handles on the topics the processors read and write (names from schemas.topics)."""

from __future__ import annotations

from processors.app import app, settings
from schemas.topics import (
    DAILY_BARS_RAW,
    PNL,
    POSITIONS,
    POSITIONS_BY_SYMBOL,
    POSITIONS_REJECTED,
    PRICES,
    QUOTES_RAW,
    QUOTES_REJECTED,
    SUBSCRIPTIONS,
    TRADES_RAW,
)


def raw_topic(*names: str):  # type: ignore[no-untyped-def]
    """A topic whose keys and values stay bytes: decoding is ours, so bad input becomes a dead letter."""
    return app.topic(
        *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=settings.topic_partitions,
    )


quotes_raw_topic = raw_topic(QUOTES_RAW.name)
quotes_rejected_topic = raw_topic(QUOTES_REJECTED.name)
prices_topic = raw_topic(PRICES.name)
positions_topic = raw_topic(POSITIONS.name)
positions_by_symbol_topic = raw_topic(POSITIONS_BY_SYMBOL.name)
positions_rejected_topic = raw_topic(POSITIONS_REJECTED.name)
pnl_topic = raw_topic(PNL.name)
subscriptions_topic = raw_topic(SUBSCRIPTIONS.name)

# The P&L join reads every input that can change a mark or a position, co-partitioned by symbol; prices
# are handed to it directly by price_quotes (processors/pnl_emitter.py), not read back from Kafka.
_mark_topics = [DAILY_BARS_RAW.name] + ([TRADES_RAW.name] if settings.mark_policy == "last" else [])
pnl_inputs_topic = raw_topic(POSITIONS_BY_SYMBOL.name, *_mark_topics)
