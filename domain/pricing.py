"""Decimal price arithmetic: mid, spread and spread in basis points of a validated quote."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

from domain.quotes import ValidQuote
from schemas.events import PriceEvent
from schemas.timestamps import format_ns

BPS_QUANTUM = Decimal("0.0001")
TWO = Decimal(2)
TEN_THOUSAND = Decimal(10_000)


def mid_price(bid: Decimal, ask: Decimal) -> Decimal:
    """(bid + ask) / 2, exact: halving a finite decimal never rounds."""
    return (bid + ask) / TWO


def spread_bps(bid: Decimal, ask: Decimal) -> Decimal:
    """Spread as basis points of the mid, rounded half-even to 1/10,000 of a basis point."""
    return ((ask - bid) / mid_price(bid, ask) * TEN_THOUSAND).quantize(BPS_QUANTUM)


def price_event(quote: ValidQuote) -> PriceEvent:
    """The price event (and Redis snapshot) a validated quote produces."""
    return PriceEvent(
        symbol=quote.symbol,
        bid=quote.bid,
        ask=quote.ask,
        mid=mid_price(quote.bid, quote.ask),
        spread=quote.ask - quote.bid,
        spread_bps=spread_bps(quote.bid, quote.ask),
        bid_size=quote.bid_size,
        ask_size=quote.ask_size,
        timestamp=format_ns(quote.timestamp_ns),
        exchange=quote.exchange,
        received_at=format_ns(quote.received_ns) if quote.received_ns is not None else None,
    )


class Price(NamedTuple):
    """A priced quote on the firehose: what marks and latency read, and the ``prices`` JSON fields.

    ``fields`` is exactly ``price_event(quote).model_dump(mode="json")`` (a hypothesis test holds them
    equal): building and dumping the pydantic model was ~9 % of the processor's CPU at 1,000 quotes/s.
    """

    symbol: str
    bid: Decimal
    ask: Decimal
    mid: Decimal
    timestamp: str
    received_at: str | None
    fields: dict[str, Any]


def price_of(quote: ValidQuote) -> Price:
    """The price a validated quote makes (the same figures as :func:`price_event`)."""
    bid, ask = quote.bid, quote.ask
    mid = mid_price(bid, ask)
    timestamp = format_ns(quote.timestamp_ns)
    received_at = format_ns(quote.received_ns) if quote.received_ns is not None else None
    fields = {
        "symbol": quote.symbol, "bid": format(bid, "f"), "ask": format(ask, "f"), "mid": format(mid, "f"),
        "spread": format(ask - bid, "f"), "spread_bps": format(spread_bps(bid, ask), "f"),
        "bid_size": quote.bid_size, "ask_size": quote.ask_size, "timestamp": timestamp,
        "exchange": quote.exchange, "received_at": received_at,
    }
    return Price(quote.symbol, bid, ask, mid, timestamp, received_at, fields)
