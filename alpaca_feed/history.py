"""Bounded per-symbol history of what the feed published, for the REST endpoints (reconciliation).

Every trade, quote, minute bar (amended by updated bars) and daily bar that goes out is kept as a
compact tuple in time order. Memory is bounded per symbol: the last ``limit`` trades and ``limit``
quotes (default 1,000 each), the last 1,440 minute bars (a day) and 30 daily bars; at roughly 0.3 KB
per entry that is about 1 MB per symbol at the default. Messages whose ``t`` is not integer ns
(malformed ones injected on purpose) are not kept.
"""

from __future__ import annotations

import bisect
import collections
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any, cast

DEFAULT_LIMIT = 1_000
MINUTE_BARS_KEPT = 1_440
DAILY_BARS_KEPT = 30

# REST field order of each kind; ``t`` first so rows sort by time.
TRADE_FIELDS = ("t", "x", "p", "s", "c", "i", "z")
QUOTE_FIELDS = ("t", "ax", "ap", "as", "bx", "bp", "bs", "c", "z")
BAR_FIELDS = ("t", "o", "h", "l", "c", "v", "n", "vw")
FIELDS = {"trades": TRADE_FIELDS, "quotes": QUOTE_FIELDS, "bars": BAR_FIELDS, "daily": BAR_FIELDS}

Row = tuple[Any, ...]


class Series:
    """The rows of one kind for one symbol, in time order, at most ``maxlen`` of them."""

    __slots__ = ("rows",)

    def __init__(self, maxlen: int) -> None:
        self.rows: collections.deque[Row] = collections.deque(maxlen=maxlen)

    def add(self, row: Row) -> None:
        """Append (the usual case) or insert in time order (an out-of-order message)."""
        rows = self.rows
        if not rows or row[0] >= rows[-1][0]:
            rows.append(row)
            return
        if len(rows) == rows.maxlen and row[0] < rows[0][0]:
            return  # older than everything kept: it would be evicted at once
        if len(rows) == rows.maxlen:
            rows.popleft()
        rows.insert(bisect.bisect_right(rows, row[0], key=_time), row)

    def put(self, row: Row) -> None:
        """Add, or replace the row with the same ``t`` (a bar amended by an updated bar)."""
        rows = self.rows
        index = bisect.bisect_left(rows, row[0], key=_time)
        if index < len(rows) and rows[index][0] == row[0]:
            rows[index] = row
        else:
            self.add(row)

    def latest(self) -> Row | None:
        """The newest row."""
        return self.rows[-1] if self.rows else None

    def between(self, start: int, end: int) -> list[Row]:
        """Rows with ``start <= t <= end``, oldest first."""
        rows = self.rows
        low = bisect.bisect_left(rows, start, key=_time)
        high = bisect.bisect_right(rows, end, key=_time)
        return [rows[i] for i in range(low, high)]


def _time(row: Row) -> Any:
    return row[0]


def rest_record(kind: str, row: Row, format_time: Any) -> dict[str, Any]:
    """A row in Alpaca's REST shape (no ``T``/``S``; absent optional fields left out)."""
    out = {key: value for key, value in zip(FIELDS[kind], row, strict=True) if value is not None}
    out["t"] = format_time(row[0])
    return out


class History:
    """What the feed published, per symbol and kind, bounded (see the module docstring)."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 0:
            raise ValueError("history limit must be >= 0")
        self.limit = limit
        self._series: dict[str, dict[str, Series]] = {kind: {} for kind in FIELDS}
        # Message type -> (kind, row getter, fields, replaces a row with the same t).
        self._routes: dict[str, tuple[str, Callable[[Mapping[str, Any]], Row], tuple[str, ...], bool]] = {
            "q": ("quotes", itemgetter(*QUOTE_FIELDS), QUOTE_FIELDS, False),
            "t": ("trades", itemgetter(*TRADE_FIELDS), TRADE_FIELDS, False),
            "b": ("bars", itemgetter(*BAR_FIELDS), BAR_FIELDS, True),
            "u": ("bars", itemgetter(*BAR_FIELDS), BAR_FIELDS, True),
            "d": ("daily", itemgetter(*BAR_FIELDS), BAR_FIELDS, True),
        }

    def _of(self, kind: str, symbol: str) -> Series:
        series = self._series[kind].get(symbol)
        if series is None:
            maxlen = {"bars": MINUTE_BARS_KEPT, "daily": DAILY_BARS_KEPT}.get(kind, self.limit)
            series = self._series[kind][symbol] = Series(maxlen)
        return series

    def record(self, messages: Iterable[Mapping[str, Any]]) -> None:
        """Keep the trades, quotes, minute/updated bars and daily bars among ``messages``."""
        if not self.limit:
            return
        routes = self._routes
        for message in messages:
            route = routes.get(message.get("T", ""))
            t = message.get("t")
            if route is None or type(t) is not int:
                continue
            kind, row_of, fields, replace = route
            try:
                row = row_of(message)
            except KeyError:  # an optional field is absent (injected or replayed messages)
                row = tuple(map(message.get, fields))
            symbol = cast(str, message.get("S"))  # recorded data messages carry it
            series = self._series[kind].get(symbol) or self._of(kind, symbol)
            rows = series.rows
            if replace:
                series.put(row)
            elif not rows or t >= rows[-1][0]:
                rows.append(row)  # the usual case, inlined: this runs for every published message
            else:
                series.add(row)

    def symbols(self) -> set[str]:
        """Every symbol with any history."""
        return {symbol for series in self._series.values() for symbol in series}

    def latest(self, kind: str, symbol: str) -> Row | None:
        """The newest row of ``kind`` (trades, quotes, bars, daily) for ``symbol``."""
        series = self._series[kind].get(symbol)
        return None if series is None else series.latest()

    def between(self, kind: str, symbol: str, start: int, end: int) -> list[Row]:
        """Rows of ``kind`` for ``symbol`` with ``start <= t <= end``, oldest first."""
        series = self._series[kind].get(symbol)
        return [] if series is None else series.between(start, end)

    def daily_before(self, symbol: str, day_start: int) -> Row | None:
        """The newest daily bar stamped before ``day_start`` (the previous trading day's)."""
        rows = self.between("daily", symbol, 0, day_start - 1)
        return rows[-1] if rows else None


def aggregate(rows: Sequence[Row], bucket_ns: int) -> list[Row]:
    """Minute bar rows merged into ``bucket_ns``-wide bars (``t`` = bucket start), oldest first."""
    out: list[Row] = []
    current: list[Any] | None = None
    notional = 0.0
    for t, o, h, low, c, v, n, vw in rows:
        start = t - t % bucket_ns
        if current is None or current[0] != start:
            if current is not None:
                out.append(_finish(current, notional))
            current, notional = [start, o, h, low, c, 0, 0, 0.0], 0.0
        current[2] = max(current[2], h)
        current[3] = min(current[3], low)
        current[4] = c
        current[5] += v
        current[6] += n
        notional += (vw or 0.0) * v
    if current is not None:
        out.append(_finish(current, notional))
    return out


def _finish(bar: list[Any], notional: float) -> Row:
    bar[7] = round(notional / bar[5], 6) if bar[5] else 0.0
    return tuple(bar)
