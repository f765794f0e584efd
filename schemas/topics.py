"""Every Kafka topic, key format, Redis key and Redis channel tickwire reads or writes.

Other modules never spell a topic name or Redis key themselves: they import it from here, so this
file is the whole contract a downstream service needs (``tests/unit/test_contracts.py`` checks that).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import (
    IngestStatus,
    PriceEvent,
    PriceSnapshot,
    PriceUpdated,
    RawBar,
    RawQuote,
    RawTrade,
    RejectedQuote,
    SubscriptionRequest,
)


@dataclass(frozen=True)
class TopicSpec:
    """A Kafka topic: its name, what its key is, and the pydantic model of its value (JSON)."""

    name: str
    key: str
    value: type
    description: str


TRADES_RAW = TopicSpec("trades.raw", "symbol", RawTrade, "Alpaca trades as received, plus receive time")
QUOTES_RAW = TopicSpec("quotes.raw", "symbol", RawQuote, "Alpaca quotes as received, plus receive time")
BARS_RAW = TopicSpec("bars.raw", "symbol", RawBar, "Alpaca 1-minute bars as received, plus receive time")
QUOTES_REJECTED = TopicSpec(
    "quotes.rejected", "symbol", RejectedQuote, "Quotes that failed validation: original payload + reason"
)
PRICES = TopicSpec("prices", "symbol", PriceEvent, "Validated quotes that became the latest price")
SUBSCRIPTIONS = TopicSpec(
    "subscriptions", "symbol", SubscriptionRequest, "Control topic: which sources want which symbols streamed"
)

ALL_TOPICS: tuple[TopicSpec, ...] = (TRADES_RAW, QUOTES_RAW, BARS_RAW, QUOTES_REJECTED, PRICES, SUBSCRIPTIONS)

# Alpaca message type "T" -> the raw topic it is published to.
RAW_TOPIC_BY_MESSAGE_TYPE: dict[str, TopicSpec] = {"t": TRADES_RAW, "q": QUOTES_RAW, "b": BARS_RAW}

# The price processor's Faust table; its changelog topic is "{TICKWIRE_PROCESSOR_APP_ID}-{name}-changelog".
LATEST_PRICE_TABLE = "latest_price_by_symbol"

PRICE_CHANNEL_PATTERN = "price.updated.*"
PROCESSOR_STATS_KEY = "tickwire:stats:processor"
INGEST_STATUS_KEY = "tickwire:status:ingest"  # IngestStatus JSON, short TTL
INGEST_LEASE_KEY = "tickwire:lease:ingest"  # held by the active ingest (one Alpaca connection per account)


def price_key(symbol: str) -> str:
    """Redis key holding the latest :class:`PriceSnapshot` JSON of a symbol (with a TTL)."""
    return f"price:{symbol}"


def price_channel(symbol: str) -> str:
    """Redis pub/sub channel that receives a :class:`PriceUpdated` JSON per price change."""
    return f"price.updated.{symbol}"


def symbol_from_price_channel(channel: str) -> str:
    """Inverse of :func:`price_channel`."""
    return channel.removeprefix("price.updated.")


__all__ = [
    "ALL_TOPICS",
    "BARS_RAW",
    "INGEST_LEASE_KEY",
    "INGEST_STATUS_KEY",
    "LATEST_PRICE_TABLE",
    "PRICES",
    "PRICE_CHANNEL_PATTERN",
    "PROCESSOR_STATS_KEY",
    "QUOTES_RAW",
    "QUOTES_REJECTED",
    "RAW_TOPIC_BY_MESSAGE_TYPE",
    "SUBSCRIPTIONS",
    "TRADES_RAW",
    "IngestStatus",
    "PriceSnapshot",
    "PriceUpdated",
    "SubscriptionRequest",
    "TopicSpec",
    "price_channel",
    "price_key",
    "symbol_from_price_channel",
]
