"""MarkCadence: hands a symbol's newest price to the P&L join at most once per interval.

Every new mark revalues every position in its symbol (10 per symbol in the benchmark's book), and that
fan-out, not the price itself, was most of the processor's CPU per quote (docs/performance.md). A
symbol quoted faster than the interval is revalued at its newest price once per interval; a symbol
quoted more slowly is revalued on every quote, with no added delay.
"""

from __future__ import annotations

from collections.abc import Mapping

from domain.records import SourceRecord


class MarkCadence:
    """Rate-limits marks per symbol; the newest held mark of a symbol replaces older held ones."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last_passed: dict[str, float] = {}  # symbol -> when its last mark went to the join
        self._held: dict[str, SourceRecord] = {}

    def offer(self, newest: Mapping[str, SourceRecord], now: float) -> list[SourceRecord]:
        """The marks to apply now (one per symbol); the others are held until :meth:`due`."""
        out: list[SourceRecord] = []
        for symbol, record in newest.items():
            if now - self._last_passed.get(symbol, float("-inf")) >= self.interval_s:
                self._held.pop(symbol, None)
                self._last_passed[symbol] = now
                out.append(record)
            else:
                self._held[symbol] = record
        return out

    def due(self, now: float) -> list[SourceRecord]:
        """Held marks whose symbol's interval has passed."""
        ready = [s for s in self._held if now - self._last_passed[s] >= self.interval_s]
        for symbol in ready:
            self._last_passed[symbol] = now
        return [self._held.pop(symbol) for symbol in ready]

    def drain(self, now: float) -> list[SourceRecord]:
        """Every held mark, due or not (before offsets are committed, so none is lost with a crash)."""
        for symbol in self._held:
            self._last_passed[symbol] = now
        held, self._held = list(self._held.values()), {}
        return held

    @property
    def held(self) -> int:
        """Symbols with a mark waiting."""
        return len(self._held)
