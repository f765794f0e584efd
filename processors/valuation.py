"""Position valuation: which price marks a position, and its unrealized P&L (Decimal, to the cent).

Shared by the P&L processor (event-driven) and the API (on request), so both value alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Literal

from schemas.events import LastTrade, Position, PositionPnL, PreviousClose, PriceSnapshot, PriceSource

MarkPolicy = Literal["mid", "side", "last"]
CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Mark:
    """The price a position is valued at, where it came from, and its exchange time."""

    price: Decimal
    source: PriceSource
    timestamp: str


def choose_mark(
    policy: MarkPolicy,
    qty: Decimal,
    price: PriceSnapshot | None,
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
        live = Mark(price.mid if policy == "mid" else side_price, "real-time", price.timestamp)
    if live is not None:
        return live
    if close is not None:
        return Mark(close.close, "closing", close.timestamp)
    return None


def unrealized_pnl(qty: Decimal, avg_entry_price: Decimal, mark_price: Decimal) -> Decimal:
    """(mark - avg entry) * qty, rounded half-even to the cent (negative qty = short)."""
    return ((mark_price - avg_entry_price) * qty).quantize(CENT, rounding=ROUND_HALF_EVEN)


def value_position(position: Position, mark: Mark | None, updated_at: str) -> PositionPnL:
    """A position's P&L at ``mark`` (price_source "none" and null figures when there is no mark)."""
    return PositionPnL(
        account=position.account,
        symbol=position.symbol,
        qty=position.qty,
        avg_entry_price=position.avg_entry_price,
        mark_price=mark.price if mark else None,
        unrealized_pnl=unrealized_pnl(position.qty, position.avg_entry_price, mark.price) if mark else None,
        price_source=mark.source if mark else "none",
        price_timestamp=mark.timestamp if mark else None,
        updated_at=updated_at,
    )


def total_unrealized(valued: Iterable[PositionPnL]) -> Decimal:
    """Sum of the per-position figures as shown (each already to the cent); unvalued ones count 0."""
    return sum((p.unrealized_pnl for p in valued if p.unrealized_pnl is not None), Decimal("0.00"))
