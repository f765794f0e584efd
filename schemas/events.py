"""Pydantic models of every topic value and Redis payload (JSON on the wire, Decimal in memory).

Prices are ``Decimal`` and serialise as exact decimal strings ("150.26"); event times are RFC 3339 UTC
strings with nine fractional digits (see :mod:`schemas.timestamps`).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

DECIMAL_TEXT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"  # what format(d, "f") writes for a finite Decimal
# Plain notation always ("0.00001", never "1E-5"), so consumers can parse it with any decimal library.
DecimalStr = Annotated[
    Decimal,
    PlainSerializer(lambda d: format(d, "f"), return_type=str),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_TEXT_PATTERN,
                    "description": "an exact decimal in plain notation"}, mode="serialization"),
]


class _Frozen(BaseModel):
    # to_json writes every field, defaults too: the published schemas (tools/json_schemas.py) require them all.
    model_config = ConfigDict(frozen=True, populate_by_name=True, json_schema_serialization_defaults_required=True)

    def to_json(self) -> bytes:
        """Serialise to the JSON bytes that go on the wire."""
        return self.model_dump_json(by_alias=True).encode()


class _RawAlpaca(_Frozen):
    """Fields common to every raw Alpaca event published by the ingest."""

    # Published as received (producers/raw_events.py), so a field with a default may be absent.
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="allow",
                              json_schema_serialization_defaults_required=False)

    type: str = Field(alias="T")
    symbol: str = Field(alias="S")
    timestamp: str = Field(alias="t", description="exchange time, RFC 3339 with nanoseconds")
    received_at: str = Field(description="when the ingest received it, RFC 3339 with nanoseconds")
    # Live messages carry no source (or "stream"); REST repairs of a gap say "backfill" and name the gap.
    source: Literal["stream", "backfill"] = "stream"
    gap_id: str | None = Field(None, description="the FeedGap a backfilled message repairs")


class RawTrade(_RawAlpaca):
    """Value of ``trades.raw``: an Alpaca trade (``T="t"``) as received."""

    price: float = Field(alias="p")
    size: int = Field(alias="s")
    exchange: str | None = Field(None, alias="x")
    trade_id: int | None = Field(None, alias="i")
    conditions: list[str] | None = Field(None, alias="c")
    tape: str | None = Field(None, alias="z")


class RawQuote(_RawAlpaca):
    """Value of ``quotes.raw``: an Alpaca quote (``T="q"``) as received (not yet validated)."""

    bid_price: float = Field(alias="bp")
    bid_size: int = Field(alias="bs")
    ask_price: float = Field(alias="ap")
    ask_size: int = Field(alias="as")
    bid_exchange: str | None = Field(None, alias="bx")
    ask_exchange: str | None = Field(None, alias="ax")
    conditions: list[str] | None = Field(None, alias="c")
    tape: str | None = Field(None, alias="z")


class RawBar(_RawAlpaca):
    """Value of ``bars.raw``: an Alpaca 1-minute bar (``T="b"``); ``t`` is the minute start."""

    open: float = Field(alias="o")
    high: float = Field(alias="h")
    low: float = Field(alias="l")
    close: float = Field(alias="c")
    volume: int = Field(alias="v")
    trade_count: int | None = Field(None, alias="n")
    vwap: float | None = Field(None, alias="vw")


class RejectReason(StrEnum):
    """Why a quote was dead-lettered to ``quotes.rejected``."""

    MALFORMED = "malformed"  # not JSON, or not a JSON object
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"  # wrong type, NaN/infinite, bad symbol or timestamp
    NEGATIVE_PRICE = "negative_price"
    ZERO_PRICE = "zero_price"  # one-sided market: no mid price exists
    NEGATIVE_SIZE = "negative_size"
    CROSSED_MARKET = "crossed_market"  # ask < bid
    STALE = "stale"  # exchange time too far from receive time
    OUT_OF_ORDER = "out_of_order"  # older than the symbol's latest price


class RejectedQuote(_Frozen):
    """Value of ``quotes.rejected``: the original payload, why it was rejected, and where it came from."""

    reason: RejectReason
    detail: str
    symbol: str | None
    payload: Any = Field(description="the original value: a JSON object, or the raw text if it was not JSON")
    source_topic: str
    source_partition: int
    source_offset: int
    rejected_at: str


class PriceSnapshot(_Frozen):
    """Redis ``price:{SYMBOL}``: the latest validated price of a symbol."""

    symbol: str
    bid: DecimalStr
    ask: DecimalStr
    mid: DecimalStr
    spread: DecimalStr
    spread_bps: DecimalStr
    bid_size: int
    ask_size: int
    timestamp: str = Field(description="the quote's exchange time, RFC 3339 UTC, nanoseconds")
    exchange: str | None


class PriceEvent(PriceSnapshot):
    """Value of ``prices``: a price snapshot plus when the ingest received its quote."""

    received_at: str | None = None


class PriceUpdated(_Frozen):
    """Message on Redis channel ``price.updated.{SYMBOL}``: one per change of the latest price."""

    event_type: Literal["price.updated"] = "price.updated"
    symbol: str
    price: DecimalStr = Field(description="the mid price")
    bid: DecimalStr
    ask: DecimalStr
    timestamp: str


class SubscriptionRequest(_Frozen):
    """Value of ``subscriptions`` (key = symbol): one source wants a symbol streamed, or no longer.

    The ingest subscribes a symbol while at least one source wants it (reference counting by source:
    ``config`` for TICKWIRE_SYMBOLS, ``api`` for POST /api/v1/subscribe, ``positions`` for open positions).
    """

    symbol: str
    action: Literal["subscribe", "unsubscribe"]
    source: str = Field(description="who asks: config, api, positions, ...")
    requested_at: str


class IngestStatus(_Frozen):
    """Redis ``tickwire:status:ingest`` (short TTL, refreshed every second): what the ingest is doing."""

    role: Literal["active", "standby"]
    connected: bool
    healthy: bool
    stream_url: str
    subscribed_symbols: list[str]
    reconnect_attempts: int
    queue_depth: int
    overflow: int
    messages_received: dict[str, int] = Field(description="by Alpaca message type: t, q, b, ...")
    messages_published: dict[str, int]
    last_message_at: dict[str, str] = Field(description="symbol -> receive time of its last message")
    gaps: int
    detail: str = ""
    updated_at: str
    instance: str = Field("", description="which ingest process wrote this")
    reconnects_total: int = Field(0, description="successful reconnects since start")
    max_reconnect_attempts_exceeded: bool = False
    pending_symbols: list[str] = Field([], description="wanted, but over the feed's symbol limit")
    quiet_symbols: list[str] = Field([], description="subscribed, silent while others flow")
    halted_symbols: list[str] = Field([], description="halted per the last trading status message")
    messages_per_second: dict[str, float] = Field({}, description="by Alpaca message type, last second")
    last_exchange_at: dict[str, str] = Field({}, description="symbol -> exchange time of its last message")
    backfilled: int = Field(0, description="messages re-published from REST to repair gaps")
    backfill_failures: int = 0
    malformed: int = Field(0, description="frames or messages from Alpaca that could not be used")


class GapReason(StrEnum):
    """Why the ingest may have missed data (value of ``FeedGap.reason``)."""

    RECONNECT = "reconnect"  # the socket dropped or failed; data sent meanwhile never arrived
    STALL = "stall"  # the socket stayed open but went mute; it was reconnected
    OVERFLOW = "overflow"  # the ingest's queue was full (Kafka slow or down): received messages were dropped
    TAKEOVER = "takeover"  # a standby ingest took over from an active one that stopped or died


class FeedGap(_Frozen):
    """Value of ``feed.gaps`` (key = symbol): a window in which this symbol's stream data may be missing.

    ``last_before`` / ``first_after`` are exchange times (RFC 3339, ns) of the last message received before
    the gap and the first one after it (None: none seen, or none yet when the gap was closed). The ingest
    then re-publishes the window's trades and bars and the latest quote from Alpaca's REST API to the raw
    topics with ``"source": "backfill"`` and this ``gap_id``.
    """

    gap_id: str = Field(description="one id per incident, shared by all its symbols")
    symbol: str
    symbols: list[str] = Field(description="every symbol of the same incident")
    reason: GapReason
    last_before: str | None
    first_after: str | None
    started_at: str = Field(description="when the ingest lost data (receive time, RFC 3339 ns)")
    ended_at: str = Field(description="when the stream was back for this symbol (receive time)")
    detail: str = ""


PriceSource = Literal["real-time", "closing", "none"]


class Position(_Frozen):
    """Value of ``positions`` (key ``{account}:{symbol}``): a position as its owner reports it.

    ``qty`` is negative for shorts; ``"0"`` (or a tombstone, i.e. a null value) closes the position.
    """

    account: str = "default"
    symbol: str
    qty: DecimalStr
    avg_entry_price: DecimalStr
    updated_at: str


class PositionPnL(_Frozen):
    """Value of ``pnl`` and of a field of Redis hash ``pnl:{account}``: one position valued at a mark.

    ``mark_price``/``unrealized_pnl`` are null when neither a live price nor a previous close is known.
    """

    account: str
    symbol: str
    qty: DecimalStr
    avg_entry_price: DecimalStr
    mark_price: DecimalStr | None
    unrealized_pnl: DecimalStr | None = Field(description="(mark - avg_entry_price) * qty, to the cent")
    price_source: PriceSource
    price_timestamp: str | None = Field(description="exchange time of the quote/trade or the close")
    updated_at: str


class AccountPnL(_Frozen):
    """Redis ``pnl_total:{account}``: the account's total unrealized P&L over its open positions."""

    account: str
    total_unrealized: DecimalStr
    positions: int
    updated_at: str


class PnLUpdated(_Frozen):
    """Message on Redis channel ``pnl.updated.{account}``: a position was revalued."""

    event_type: Literal["pnl.updated"] = "pnl.updated"
    account: str
    symbol: str
    qty: DecimalStr
    mark_price: DecimalStr | None
    unrealized_pnl: DecimalStr | None
    price_source: PriceSource
    total_unrealized: DecimalStr
    timestamp: str
    # The mark's exchange time: with ``timestamp`` (when valued) it tells how fresh the figure is.
    price_timestamp: str | None = None


class PreviousClose(_Frozen):
    """Redis ``close:{SYMBOL}``: the last official close, the mark when no live price exists."""

    symbol: str
    close: DecimalStr
    timestamp: str = Field(description="the daily bar's time (session date, midnight New York, in UTC)")
    source: Literal["daily_bar", "snapshot", "manual"]


class LastTrade(_Frozen):
    """Redis ``trade:{SYMBOL}``: the latest valid trade, the mark under the ``last`` policy."""

    symbol: str
    price: DecimalStr
    size: int
    timestamp: str


class PartitionProgress(_Frozen):
    """The price stage's position in one partition of ``quotes.raw`` (hash ``progress_key(app_id, topic)``).

    Written about once a second for each owned partition. ``highwater`` is the high watermark the stage's
    last fetch reported, so ``/health`` can tell "records are waiting and nothing is processed" (a stall) from
    "nothing to do".
    """

    offset: int = Field(description="the next offset: every record below it is published (or processed)")
    advanced_at: str = Field(description="when offset last moved forward, RFC 3339")
    updated_at: str = Field(description="when the writer last wrote this entry (about once a second), RFC 3339")
    highwater: int | None = Field(None, description="the partition's high watermark at the last fetch (None: unknown)")


__all__ = [
    "DECIMAL_TEXT_PATTERN",
    "AccountPnL",
    "DecimalStr",
    "FeedGap",
    "GapReason",
    "IngestStatus",
    "LastTrade",
    "PartitionProgress",
    "PnLUpdated",
    "Position",
    "PositionPnL",
    "PreviousClose",
    "PriceEvent",
    "PriceSnapshot",
    "PriceSource",
    "PriceUpdated",
    "RawBar",
    "RawQuote",
    "RawTrade",
    "RejectReason",
    "RejectedQuote",
    "SubscriptionRequest",
]
