"""Position changes during a soak: a few fills on the book now and then, so the P&L stage keeps joining new data."""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal

from bench.positions import BenchPosition, BookPublisher

LOT = 10
MAX_LOTS = 10  # a fill moves a position by 1-10 lots of 10 shares
PRICE_MOVE = 0.01  # and its average entry price by up to 1 %


def filled(position: BenchPosition, rng: random.Random) -> BenchPosition:
    """``position`` after one fill: a new quantity (never flat: the position stays open) and entry price."""
    qty = position.qty
    while qty == position.qty or qty == 0:
        qty = position.qty + rng.choice((-1, 1)) * rng.randint(1, MAX_LOTS) * LOT
    price = Decimal(position.avg_entry_price) * Decimal(str(round(rng.uniform(1 - PRICE_MOVE, 1 + PRICE_MOVE), 4)))
    return replace(position, qty=qty, avg_entry_price=f"{price:.2f}")


class PositionChanges:
    """Holds the book as last published; each :meth:`publish` fills ``count`` random positions of it."""

    def __init__(self, book: list[BenchPosition], publisher: BookPublisher, count: int, seed: int) -> None:
        self.book = list(book)
        self.publisher = publisher
        self.count = min(count, len(book))
        self.rng = random.Random(f"bench-position-changes:{seed}")
        self.published = 0  # positions changed so far

    def next_changes(self) -> list[BenchPosition]:
        """Pick and fill the next ``count`` positions (the book keeps their new values)."""
        picks = self.rng.sample(range(len(self.book)), self.count)
        for index in picks:
            self.book[index] = filled(self.book[index], self.rng)
        return [self.book[index] for index in picks]

    async def publish(self) -> int:
        """Publish the next changes to ``positions``; returns how many positions changed."""
        changes = self.next_changes()
        await self.publisher.send(changes)
        self.published += len(changes)
        return len(changes)
