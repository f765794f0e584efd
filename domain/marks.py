"""Marks other than quotes: the last trade (the ``last`` policy) and the previous close (the fallback)."""

from __future__ import annotations

from typing import Any

from domain.positions import parse_decimal
from schemas.events import LastTrade, PreviousClose
from schemas.symbols import normalize_symbol
from schemas.timestamps import format_ns, parse_ns


def last_trade(raw: dict[str, Any]) -> LastTrade:
    """A raw Alpaca trade as the ``last`` mark; ValueError/KeyError/TypeError when it cannot mark anything."""
    price = parse_decimal(raw["p"], "p")
    size = raw["s"]
    if price <= 0 or not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ValueError(f"unusable trade: price {raw.get('p')!r}, size {raw.get('s')!r}")
    return LastTrade(symbol=normalize_symbol(raw["S"]), price=price, size=size,
                     timestamp=format_ns(parse_ns(raw["t"])))


def previous_close(raw: dict[str, Any]) -> PreviousClose:
    """A raw Alpaca daily bar as the previous close; ValueError/KeyError/TypeError when unusable."""
    close = parse_decimal(raw["c"], "c")
    if close <= 0:
        raise ValueError(f"unusable close {raw.get('c')!r}")
    return PreviousClose(symbol=normalize_symbol(raw["S"]), close=close,
                         timestamp=format_ns(parse_ns(raw["t"])), source="daily_bar")
