"""Where the synthetic market starts: recent closes and typical spreads of well-known US symbols.

A demo of AAPL at $42.90 does not look like a market; these symbols start near where they really
trade. Any other symbol keeps the seeded random start ($20-$500, spread 1-3 cents).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SeedPrice:
    """A symbol's reference close (dollars, two decimals) and its quoted spread range in cents."""

    close: str
    min_spread_cents: int = 1
    max_spread_cents: int = 2


# Approximate recent closes (rounded); spreads as these names usually quote on the NBBO.
SEED_PRICES: dict[str, SeedPrice] = {
    "AAPL": SeedPrice("230.10", 1, 2),
    "MSFT": SeedPrice("420.55", 1, 3),
    "GOOGL": SeedPrice("170.25", 1, 2),
    "GOOG": SeedPrice("171.40", 1, 2),
    "AMZN": SeedPrice("190.35", 1, 2),
    "TSLA": SeedPrice("250.80", 1, 4),
    "NVDA": SeedPrice("120.45", 1, 1),
    "META": SeedPrice("560.20", 2, 8),
    "AMD": SeedPrice("140.15", 1, 2),
    "NFLX": SeedPrice("705.60", 5, 20),
    "AVGO": SeedPrice("172.30", 1, 4),
    "JPM": SeedPrice("225.70", 1, 3),
    "V": SeedPrice("285.40", 1, 4),
    "BRK.B": SeedPrice("455.10", 2, 8),
    "INTC": SeedPrice("22.15", 1, 1),
    "SPY": SeedPrice("575.20", 1, 1),
    "QQQ": SeedPrice("495.30", 1, 2),
    "IWM": SeedPrice("220.40", 1, 1),
}

# The random fallback's range for any symbol not in the table.
FALLBACK_SPREAD_CENTS = (1, 3)


def seed_price(symbol: str) -> SeedPrice | None:
    """The table's entry for ``symbol`` (already normalised, e.g. ``BRK.B``), None when it has none."""
    return SEED_PRICES.get(symbol)
