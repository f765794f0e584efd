"""Position valuation: which price marks a position, and its unrealized P&L (Decimal, to the cent).

Shared by the P&L processor (event-driven) and the API (on request), so both value alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal, NamedTuple, Protocol

import orjson

from schemas.events import LastTrade, Position, PreviousClose, PriceSource
from schemas.timestamps import parse_ns

MarkPolicy = Literal["mid", "side", "last"]  # which price marks a position (TICKWIRE_MARK_POLICY)
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Mark:
    """The price a position is valued at, where it came from, and its exchange time."""

    price: Decimal
    source: PriceSource
    timestamp: str
    timestamp_ns: int = 0  # the exchange time as an integer, when the caller has it (0: not known)


class Quote(Protocol):
    """What a mark is chosen from: a ``PriceSnapshot``, or the P&L stage's :class:`QuoteMark`."""

    @property
    def bid(self) -> Decimal: ...
    @property
    def ask(self) -> Decimal: ...
    @property
    def mid(self) -> Decimal: ...
    @property
    def timestamp(self) -> str: ...


class QuoteMark(NamedTuple):
    """A price from the marks topic, as the P&L stage keeps it: the figures marks are chosen from."""

    symbol: str
    bid: Decimal
    ask: Decimal
    mid: Decimal
    timestamp: str
    timestamp_ns: int


def quote_mark(fields: Mapping[str, Any]) -> QuoteMark:
    """The figures of a ``PriceEvent``'s JSON fields, read without a model.

    The price stage wrote them (its own output, canonical fields), so they are trusted rather than validated
    again; a record that is not one still fails here, with ValueError, KeyError or TypeError.
    """
    symbol, timestamp = fields["symbol"], fields["timestamp"]
    if not isinstance(symbol, str) or not isinstance(timestamp, str):
        raise TypeError(f"a price's symbol and timestamp are strings, got {symbol!r}, {timestamp!r}")
    try:
        bid, ask, mid = Decimal(fields["bid"]), Decimal(fields["ask"]), Decimal(fields["mid"])
    except ArithmeticError:  # decimal.InvalidOperation
        raise ValueError(f"a price's bid, ask and mid are decimal strings, got {dict(fields)!r}") from None
    if not (bid.is_finite() and ask.is_finite() and mid.is_finite()):
        raise ValueError(f"a price's bid, ask and mid are finite, got {bid}, {ask}, {mid}")
    return QuoteMark(symbol, bid, ask, mid, timestamp, parse_ns(timestamp))


def choose_mark(
    policy: MarkPolicy,
    qty: Decimal,
    price: Quote | None,
    last_trade: LastTrade | None,
    close: PreviousClose | None,
) -> Mark | None:
    """The live mark under ``policy``, else the previous close, else None.

    ``mid``: the quote's mid. ``side``: the bid for longs (what a sale would get), the ask for shorts.
    ``last``: the last trade. Only validated quotes ever reach ``price``.
    """
    live: Mark | None = None
    if policy == "last":
        if last_trade is not None:
            live = Mark(last_trade.price, "real-time", last_trade.timestamp)
    elif price is not None:
        side_price = price.bid if qty > 0 else price.ask
        live = Mark(price.mid if policy == "mid" else side_price, "real-time", price.timestamp,
                    price.timestamp_ns if isinstance(price, QuoteMark) else 0)
    if live is not None:
        return live
    if close is not None:
        return Mark(close.close, "closing", close.timestamp)
    return None


def unrealized_pnl(qty: Decimal, avg_entry_price: Decimal, mark_price: Decimal) -> Decimal:
    """(mark - avg entry) * qty, rounded half-even to the cent (negative qty = short)."""
    return ((mark_price - avg_entry_price) * qty).quantize(CENT, rounding=ROUND_HALF_EVEN)


class PositionValuation(NamedTuple):
    """One position valued at a mark: the in-memory form of :class:`schemas.events.PositionPnL`.

    The P&L processor makes thousands a second, and validating each as a pydantic model cost more than
    the valuation itself (a frozen dataclass cost twice a tuple to build); ``to_json`` writes the very bytes
    ``PositionPnL.to_json`` would.
    """

    account: str
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    mark_price: Decimal | None
    unrealized_pnl: Decimal | None
    price_source: PriceSource
    price_timestamp: str | None
    updated_at: str
    price_ns: int = 0  # price_timestamp and updated_at as integers, when known (latency metrics; not in the JSON)
    valued_ns: int = 0

    def to_json(self) -> bytes:
        """The ``pnl`` record value (and ``pnl:{account}`` field): PositionPnL's JSON, field for field."""
        return self.json_head() + self.json_tail()

    def json_head(self) -> bytes:
        """``to_json`` up to the entry price and its comma: it stays the same while the position does."""
        return orjson.dumps({
            "account": self.account,
            "symbol": self.symbol,
            "qty": format(self.qty, "f"),
            "avg_entry_price": format(self.avg_entry_price, "f"),
        })[:-1] + b","

    def json_tail(self, mark_text: str | None = None) -> bytes:
        """The rest of ``to_json``, from ``mark_price`` on; ``mark_text`` is the mark price formatted, if known."""
        if mark_text is None and self.mark_price is not None:
            mark_text = format(self.mark_price, "f")
        return orjson.dumps({
            "mark_price": mark_text,
            "unrealized_pnl": None if self.unrealized_pnl is None else format(self.unrealized_pnl, "f"),
            "price_source": self.price_source,
            "price_timestamp": self.price_timestamp,
            "updated_at": self.updated_at,
        })[1:]


def value_position(position: Position, mark: Mark | None, updated_at: str, updated_ns: int = 0) -> PositionValuation:
    """A position's P&L at ``mark`` (price_source "none" and null figures when there is no mark)."""
    if mark is None:
        return PositionValuation(position.account, position.symbol, position.qty, position.avg_entry_price,
                                 None, None, "none", None, updated_at, 0, updated_ns)
    return PositionValuation(position.account, position.symbol, position.qty, position.avg_entry_price, mark.price,
                             unrealized_pnl(position.qty, position.avg_entry_price, mark.price), mark.source,
                             mark.timestamp, updated_at, mark.timestamp_ns, updated_ns)


def total_unrealized(valued: Iterable[PositionValuation]) -> Decimal:
    """Sum of the per-position figures as shown (each already to the cent); unvalued ones count 0."""
    return sum((p.unrealized_pnl for p in valued if p.unrealized_pnl is not None), Decimal("0.00"))
