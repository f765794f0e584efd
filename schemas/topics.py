"""Every Kafka topic, key format, Redis key and Redis channel tickwire reads or writes.

Other modules never spell a topic name or Redis key themselves: they import it from here, so this
file is the whole contract a downstream service needs (``tests/unit/test_contracts.py`` checks that).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import (
    FeedGap,
    IngestStatus,
    PartitionProgress,
    Position,
    PositionPnL,
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
    compacted: bool = False  # cleanup.policy=compact: the topic keeps the latest value of every key


TRADES_RAW = TopicSpec("trades.raw", "symbol", RawTrade, "Alpaca trades as received, plus receive time")
QUOTES_RAW = TopicSpec("quotes.raw", "symbol", RawQuote, "Alpaca quotes as received, plus receive time")
BARS_RAW = TopicSpec("bars.raw", "symbol", RawBar, "Alpaca 1-minute bars as received, plus receive time")
QUOTES_REJECTED = TopicSpec(
    "quotes.rejected", "symbol", RejectedQuote, "Quotes that failed validation: original payload + reason"
)
PRICES = TopicSpec("prices", "symbol", PriceEvent, "Validated quotes that became the latest price")
SUBSCRIPTIONS = TopicSpec(
    "subscriptions", "{source}:{symbol}", SubscriptionRequest,
    "Control topic: which sources want which symbols streamed (compacted: each source's last request per symbol)",
    compacted=True,
)
FEED_GAPS = TopicSpec(
    "feed.gaps", "symbol", FeedGap, "Windows the ingest may have missed (reconnect, stall, overflow), then backfilled"
)

DAILY_BARS_RAW = TopicSpec(
    "bars.daily.raw", "symbol", RawBar,
    "Alpaca daily bars (dailyBars channel) as received (compacted: each symbol's latest bar, its last close)",
    compacted=True,
)
POSITIONS = TopicSpec(
    "positions", "{account}:{symbol}", Position, "Positions reported by other services; qty 0 or null closes",
    compacted=True,
)
POSITIONS_BY_SYMBOL = TopicSpec(
    "positions.by_symbol", "{account}:{symbol}", Position,
    "Internal: validated positions, partitioned by symbol (co-partitioned with prices), compacted per position",
    compacted=True,
)
POSITIONS_REJECTED = TopicSpec(
    "positions.rejected", "{account}:{symbol}", RejectedQuote, "Position records that could not be used, + reason"
)
PNL = TopicSpec("pnl", "{account}:{symbol}", PositionPnL, "A position revalued on a price or position change")

ALL_TOPICS: tuple[TopicSpec, ...] = (
    TRADES_RAW, QUOTES_RAW, BARS_RAW, DAILY_BARS_RAW, QUOTES_REJECTED, PRICES, SUBSCRIPTIONS, FEED_GAPS,
    POSITIONS, POSITIONS_BY_SYMBOL, POSITIONS_REJECTED, PNL,
)

# Alpaca message type "T" -> the raw topic it is published to.
RAW_TOPIC_BY_MESSAGE_TYPE: dict[str, TopicSpec] = {
    "t": TRADES_RAW, "q": QUOTES_RAW, "b": BARS_RAW, "d": DAILY_BARS_RAW,
}

# The price stage's latest price per symbol; its changelog topic is latest_price_changelog(app_id).
LATEST_PRICE_TABLE = "latest_price_by_symbol"
POSITIONS_TABLE = "positions_by_symbol"
MARKS_TABLE = "marks_by_symbol"



def marks_topic(app_id: str) -> str:
    """Internal: the price stage's conflated marks for the P&L processor (key symbol; value the ``prices``
    record (a PriceEvent) of a quote that moved the mark, or a LastTrade under the ``last`` policy; at most one
    per symbol per TICKWIRE_PNL_MARK_INTERVAL_SECONDS). Named after the processors' app id, like a changelog."""
    return f"{app_id}-marks"


def latest_price_changelog(app_id: str) -> str:
    """Internal, compacted: each symbol's newest accepted price (PriceEvent JSON, key symbol), written by the
    price stage before each offset commit and read back when a worker takes a partition over."""
    return f"{app_id}-{LATEST_PRICE_TABLE}-changelog"


def internal_topics(app_id: str) -> tuple[TopicSpec, ...]:
    """The processors' internal topics; partitioned like ``quotes.raw`` (their keys are symbols too)."""
    return (
        TopicSpec(marks_topic(app_id), "symbol", PriceEvent, "Internal: conflated marks for the P&L processor"),
        TopicSpec(latest_price_changelog(app_id), "symbol", PriceEvent,
                  "Internal: the price stage's latest price per symbol", compacted=True),
    )


PRICE_CHANNEL_PATTERN = "price.updated.*"
PROCESSOR_STATS_KEY = "tickwire:stats:processor"
INGEST_STATUS_KEY = "tickwire:status:ingest"  # IngestStatus JSON, short TTL
INGEST_LEASE_KEY = "tickwire:lease:ingest"  # held by the active ingest (one Alpaca connection per account)
API_SUBSCRIPTIONS_KEY = "tickwire:subscriptions:api"  # Redis set: symbols subscribed through the API


def price_key(symbol: str) -> str:
    """Redis key holding the latest :class:`PriceSnapshot` JSON of a symbol (with a TTL)."""
    return f"price:{symbol}"


def price_channel(symbol: str) -> str:
    """Redis pub/sub channel that receives a :class:`PriceUpdated` JSON per price change."""
    return f"price.updated.{symbol}"


def symbol_from_price_channel(channel: str) -> str:
    """Inverse of :func:`price_channel`."""
    return channel.removeprefix("price.updated.")


STREAM_DATA_FIELD = "data"  # the one field of a price or P&L stream entry: the channel's JSON message


def price_stream(symbol: str) -> str:
    """Redis stream of a symbol's price changes, capped: each entry's ``data`` field is the :class:`PriceUpdated`
    JSON its channel received, so a reader that reconnects resumes after the last entry id it saw."""
    return f"price.stream.{symbol}"


# Redis set of the symbols that have a price stream, added to with every entry: a reader of every symbol finds
# the streams it must follow here (a SCAN would be neither atomic with its reads nor cheap enough to repeat).
PRICE_STREAMS_KEY = "tickwire:streams:price"


DEFAULT_ACCOUNT = "default"
ACCOUNTS_KEY = "tickwire:accounts"  # Redis set of accounts that have (or had) positions
PNL_CHANNEL_PATTERN = "pnl.updated.*"


def position_key(account: str, symbol: str) -> str:
    """Kafka key of a ``positions`` / ``pnl`` record."""
    return f"{account}:{symbol}"


def subscription_key(source: str, symbol: str) -> str:
    """Kafka key of a ``subscriptions`` record: one per source and symbol, so compaction keeps each source's last."""
    return f"{source}:{symbol}"


def split_position_key(key: str) -> tuple[str, str]:
    """Inverse of :func:`position_key`; a bare symbol means the default account."""
    account, sep, symbol = key.rpartition(":")
    return (account if sep and account else DEFAULT_ACCOUNT), symbol


def positions_key(account: str) -> str:
    """Redis hash of an account's open positions: symbol -> :class:`Position` JSON."""
    return f"positions:{account}"


def pnl_key(account: str) -> str:
    """Redis hash of an account's valued positions: symbol -> :class:`PositionPnL` JSON."""
    return f"pnl:{account}"


def pnl_total_key(account: str) -> str:
    """Redis key of an account's :class:`AccountPnL` JSON."""
    return f"pnl_total:{account}"


def pnl_total_cents_key(account: str) -> str:
    """Redis integer: the account's total in cents, kept exactly by the P&L projection (internal)."""
    return f"pnl_total_cents:{account}"


def pnl_channel(account: str) -> str:
    """Redis channel receiving a :class:`PnLUpdated` JSON per revaluation of the account's positions."""
    return f"pnl.updated.{account}"


def pnl_stream(account: str) -> str:
    """Redis stream of an account's revaluations, capped: each entry's ``data`` field is the :class:`PnLUpdated`
    JSON its channel received (see :func:`price_stream`)."""
    return f"pnl.stream.{account}"


def close_key(symbol: str) -> str:
    """Redis key of a symbol's :class:`PreviousClose` JSON."""
    return f"close:{symbol}"


def last_trade_key(symbol: str) -> str:
    """Redis key of a symbol's :class:`LastTrade` JSON (with the price TTL)."""
    return f"trade:{symbol}"


# Replays (``tickwire replay``) write under a namespace of their own and to suffixed topics, never to live names.
LIVE_NAMESPACE = ""
REPLAY_RUN_KEY = "tickwire:replay:run"  # inside a run's namespace: the run's manifest JSON


def namespaced(name: str, namespace: str = LIVE_NAMESPACE) -> str:
    """A Redis key, channel or pattern inside ``namespace`` (a prefix; live names have the empty one)."""
    return namespace + name


def replay_namespace(run_id: str) -> str:
    """The Redis namespace of a replay run: every key and channel the run writes starts with it."""
    return f"replay:{run_id}:"


def replay_topic(topic: str, run_id: str) -> str:
    """The Kafka topic a replay run writes instead of ``topic``."""
    return f"{topic}.replay.{run_id}"


def progress_key(app_id: str, topic: str) -> str:
    """Redis hash of the processor ``app_id``'s :class:`PartitionProgress` JSON for ``topic``, one field per
    partition (:func:`processed_field`); ``/health`` reads it to tell a pipeline whose prices stopped."""
    return f"tickwire:progress:{app_id}:{topic}"


def processed_field(partition: int) -> str:
    """Field of :func:`progress_key` the price stage writes for ``partition``."""
    return f"processed:{partition}"


def symbol_stats_key(symbol: str) -> str:
    """Redis hash of a symbol's processing counts: ``accepted`` and ``rejected.{reason}``."""
    return f"tickwire:stats:symbol:{symbol}"


__all__ = [
    "ACCOUNTS_KEY",
    "ALL_TOPICS",
    "API_SUBSCRIPTIONS_KEY",
    "BARS_RAW",
    "DAILY_BARS_RAW",
    "DEFAULT_ACCOUNT",
    "FEED_GAPS",
    "INGEST_LEASE_KEY",
    "INGEST_STATUS_KEY",
    "LATEST_PRICE_TABLE",
    "LIVE_NAMESPACE",
    "MARKS_TABLE",
    "PNL",
    "PNL_CHANNEL_PATTERN",
    "POSITIONS",
    "POSITIONS_BY_SYMBOL",
    "POSITIONS_REJECTED",
    "POSITIONS_TABLE",
    "PRICES",
    "PRICE_CHANNEL_PATTERN",
    "PRICE_STREAMS_KEY",
    "PROCESSOR_STATS_KEY",
    "QUOTES_RAW",
    "QUOTES_REJECTED",
    "RAW_TOPIC_BY_MESSAGE_TYPE",
    "REPLAY_RUN_KEY",
    "STREAM_DATA_FIELD",
    "SUBSCRIPTIONS",
    "TRADES_RAW",
    "FeedGap",
    "IngestStatus",
    "PartitionProgress",
    "PriceSnapshot",
    "PriceUpdated",
    "SubscriptionRequest",
    "TopicSpec",
    "close_key",
    "internal_topics",
    "last_trade_key",
    "latest_price_changelog",
    "marks_topic",
    "namespaced",
    "pnl_channel",
    "pnl_key",
    "pnl_stream",
    "pnl_total_cents_key",
    "pnl_total_key",
    "position_key",
    "positions_key",
    "price_channel",
    "price_key",
    "price_stream",
    "processed_field",
    "progress_key",
    "replay_namespace",
    "replay_topic",
    "split_position_key",
    "subscription_key",
    "symbol_from_price_channel",
    "symbol_stats_key",
]
