"""MarkCadence: passes on a symbol's newest mark at most once per interval.

Every new mark revalues every position in its symbol, and that fan-out, not the price itself, is most
of the P&L's work per quote (docs/performance.md). A symbol quoted faster than the interval gets its
newest mark once per interval; a symbol quoted more slowly passes every mark, with no added delay.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class MarkCadence(Generic[T]):
    """Rate-limits marks per symbol; the newest held mark of a symbol replaces older held ones."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last_passed: dict[str, float] = {}  # symbol -> when its last mark passed
        self._held: dict[str, T] = {}

    def offer(self, newest: Mapping[str, T], now: float) -> list[T]:
        """The marks to pass now (one per symbol); the others are held until :meth:`due`."""
        out: list[T] = []
        for symbol, mark in newest.items():
            if now - self._last_passed.get(symbol, float("-inf")) >= self.interval_s:
                self._held.pop(symbol, None)
                self._last_passed[symbol] = now
                out.append(mark)
            else:
                self._held[symbol] = mark
        return out

    def due(self, now: float) -> list[T]:
        """Held marks whose symbol's interval has passed."""
        ready = [s for s in self._held if now - self._last_passed[s] >= self.interval_s]
        for symbol in ready:
            self._last_passed[symbol] = now
        return [self._held.pop(symbol) for symbol in ready]

    def drain(self, now: float) -> list[T]:
        """Every held mark, due or not (before offsets are committed, so none is lost with a crash)."""
        for symbol in self._held:
            self._last_passed[symbol] = now
        held, self._held = list(self._held.values()), {}
        return held

    def forget(self, symbols: set[str]) -> None:
        """Drop what is held or remembered for symbols this worker no longer owns."""
        for symbol in symbols:
            self._held.pop(symbol, None)
            self._last_passed.pop(symbol, None)

    @property
    def held(self) -> int:
        """Symbols with a mark waiting."""
        return len(self._held)
