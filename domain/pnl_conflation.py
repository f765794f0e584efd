"""PnLConflator: passes on revaluations that moved enough, and the rest once they are old enough."""

from __future__ import annotations

import time
from collections.abc import Iterable
from decimal import Decimal

from domain.valuation import PositionValuation

PositionId = tuple[str, str]  # (account, symbol)


class PnLConflator:
    """Emits a revaluation when its P&L moved by at least ``min_change`` dollars or ``min_bps`` of the
    position's cost, or when ``max_delay_s`` has passed since a held-back change. With both thresholds
    at 0 everything that changed is emitted at once. Position changes and closes are never held back.
    """

    def __init__(self, min_change: Decimal, min_bps: Decimal, max_delay_s: float) -> None:
        self.min_change = min_change
        self.min_bps = min_bps
        self.max_delay_s = max_delay_s
        self._emitted: dict[PositionId, PositionValuation] = {}
        self._held: dict[PositionId, tuple[float, PositionValuation]] = {}

    def offer(self, valued: Iterable[PositionValuation], now: float | None = None) -> list[PositionValuation]:
        """The revaluations to emit now, in order; the others are held until :meth:`due`."""
        now = time.monotonic() if now is None else now
        out: list[PositionValuation] = []
        every_change = not (self.min_change or self.min_bps)
        for pnl in valued:
            key = (pnl.account, pnl.symbol)
            previous = self._emitted.get(key)
            if previous is not None and _same(previous, pnl):
                self._held.pop(key, None)
                continue
            if every_change or previous is None or self._moved_enough(previous, pnl):
                out.append(self._emit(key, pnl))
            else:
                first_held = self._held.get(key, (now, pnl))[0]
                self._held[key] = (first_held, pnl)
        return out

    def forget_emitted(self) -> None:
        """Emitted revaluations may be lost: emit the next revaluation of every position, changed or not."""
        self._emitted.clear()

    def due(self, now: float | None = None) -> list[PositionValuation]:
        """Held revaluations whose first hold is at least ``max_delay_s`` old."""
        now = time.monotonic() if now is None else now
        ready = [key for key, (since, _) in self._held.items() if now - since >= self.max_delay_s]
        return [self._emit(key, self._held[key][1]) for key in ready]

    @property
    def held(self) -> int:
        """Positions with a revaluation held back."""
        return len(self._held)

    def _emit(self, key: PositionId, pnl: PositionValuation) -> PositionValuation:
        self._held.pop(key, None)
        if pnl.qty == 0:
            self._emitted.pop(key, None)
        else:
            self._emitted[key] = pnl
        return pnl

    def _moved_enough(self, previous: PositionValuation, current: PositionValuation) -> bool:
        if (previous.qty, previous.avg_entry_price, previous.price_source) != (
            current.qty, current.avg_entry_price, current.price_source
        ):
            return True
        if previous.unrealized_pnl is None or current.unrealized_pnl is None:
            return True
        delta = abs(current.unrealized_pnl - previous.unrealized_pnl)
        if self.min_change and delta >= self.min_change:
            return True
        cost = abs(current.qty * current.avg_entry_price)
        return bool(self.min_bps and cost and delta / cost * 10_000 >= self.min_bps)


def _same(a: PositionValuation, b: PositionValuation) -> bool:
    # qty, avg_entry_price, mark_price, unrealized_pnl, price_source: a slice is built in C
    return a[2:7] == b[2:7]
