"""LatestPrices: each symbol's newest accepted price, and which symbols changed since the last changelog write.

The price stage keeps it in memory for the partitions it owns. Before each offset commit the changed
symbols' newest prices go to the stage's changelog topic (one record per symbol, one batch per
partition), so a worker taking a partition over restores at least the state of the committed offset
and never accepts a quote older than one already priced.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

Json = dict[str, Any]


class LatestPrices(MutableMapping[str, Json]):
    """symbol -> the ``PriceEvent`` JSON dict of its newest accepted quote; writes are remembered as changed."""

    def __init__(self) -> None:
        self._prices: dict[str, Json] = {}
        self._changed: set[str] = set()

    def __getitem__(self, symbol: str) -> Json:
        return self._prices[symbol]

    def __setitem__(self, symbol: str, value: Json) -> None:
        self._prices[symbol] = value
        self._changed.add(symbol)

    def __delitem__(self, symbol: str) -> None:
        del self._prices[symbol]
        self._changed.discard(symbol)

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def restore(self, values: Iterable[Json]) -> None:
        """Take restored prices (from the changelog) where they are newer; they are not changes to write."""
        for value in values:
            symbol = value.get("symbol")
            stamp = value.get("timestamp")
            if not isinstance(symbol, str) or not isinstance(stamp, str):
                continue
            current = self._prices.get(symbol)
            if current is None or current["timestamp"] < stamp:
                self._prices[symbol] = value

    def forget(self, symbols: Iterable[str]) -> None:
        """Drop symbols whose partitions this worker no longer owns."""
        for symbol in symbols:
            self._prices.pop(symbol, None)
            self._changed.discard(symbol)

    def take_changed(self) -> dict[str, Json]:
        """The symbols written since the last call, with their newest price; clears the set."""
        changed = {symbol: self._prices[symbol] for symbol in self._changed if symbol in self._prices}
        self._changed.clear()
        return changed
