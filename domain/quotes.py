"""QuoteValidator: turns a raw ``quotes.raw`` value into a ValidQuote or a reason to dead-letter it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from schemas.events import RejectReason
from schemas.symbols import normalize_symbol
from schemas.timestamps import NS_PER_SECOND, parse_ns

REQUIRED_FIELDS = ("S", "t", "bp", "bs", "ap", "as")


@dataclass(frozen=True, slots=True)
class ValidQuote:
    """A quote that passed validation, with exact Decimal prices and nanosecond times."""

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: int
    ask_size: int
    timestamp_ns: int
    received_ns: int | None
    exchange: str | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a quote cannot be used; ``payload`` is the decoded value (or the raw text)."""

    reason: RejectReason
    detail: str
    symbol: str | None
    payload: Any


class QuoteValidator:
    """Validates Alpaca quotes: fields present and well-typed, a two-sided uncrossed market, fresh.

    ``max_age_ns`` bounds how far the exchange time may be from the ingest's receive time, either way.
    """

    def __init__(self, max_age_ns: int = 60 * NS_PER_SECOND) -> None:
        self.max_age_ns = max_age_ns

    def validate(self, value: bytes | str | dict[str, Any]) -> ValidQuote | Rejection:
        """Return a :class:`ValidQuote`, or a :class:`Rejection` saying exactly what is wrong."""
        if isinstance(value, dict):
            raw: Any = value
        else:
            try:
                raw = orjson.loads(value)
            except (orjson.JSONDecodeError, TypeError) as exc:
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                return Rejection(RejectReason.MALFORMED, f"not JSON: {exc}", None, text)
        if not isinstance(raw, dict):
            return Rejection(RejectReason.MALFORMED, f"expected a JSON object, got {type(raw).__name__}", None, raw)
        return self._validate_fields(raw)

    def _validate_fields(self, raw: dict[str, Any]) -> ValidQuote | Rejection:
        symbol = raw.get("S") if isinstance(raw.get("S"), str) else None

        def reject(reason: RejectReason, detail: str) -> Rejection:
            return Rejection(reason, detail, symbol, raw)

        missing = [name for name in REQUIRED_FIELDS if raw.get(name) is None]
        if missing:
            return reject(RejectReason.MISSING_FIELD, f"missing field(s): {', '.join(missing)}")
        try:
            symbol = normalize_symbol(raw["S"])
            timestamp_ns = parse_ns(raw["t"])
            received_ns = parse_ns(raw["received_at"]) if raw.get("received_at") is not None else None
            bid, ask = _price(raw, "bp"), _price(raw, "ap")
            bid_size, ask_size = _size(raw, "bs"), _size(raw, "as")
        except ValueError as exc:
            return reject(RejectReason.INVALID_FIELD, str(exc))

        if bid < 0 or ask < 0:
            return reject(RejectReason.NEGATIVE_PRICE, f"negative price: bid {bid}, ask {ask}")
        if bid == 0 or ask == 0:
            return reject(RejectReason.ZERO_PRICE, f"one-sided market: bid {bid}, ask {ask}")
        if bid_size < 0 or ask_size < 0:
            return reject(RejectReason.NEGATIVE_SIZE, f"negative size: bid {bid_size}, ask {ask_size}")
        if ask < bid:
            return reject(RejectReason.CROSSED_MARKET, f"crossed market: ask {ask} < bid {bid}")
        if received_ns is not None and abs(received_ns - timestamp_ns) > self.max_age_ns:
            lag_s = (received_ns - timestamp_ns) / NS_PER_SECOND
            return reject(RejectReason.STALE, f"exchange time is {lag_s:+.3f}s from receive time")

        exchange = raw.get("bx") if isinstance(raw.get("bx"), str) else None
        return ValidQuote(symbol, bid, ask, bid_size, ask_size, timestamp_ns, received_ns, exchange)


def _price(raw: dict[str, Any], name: str) -> Decimal:
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    # repr() of a float is its shortest round-trip text, so 150.27 becomes exactly Decimal("150.27").
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def _size(raw: dict[str, Any], name: str) -> int:
    value = raw[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)
