"""A seeded, deterministic synthetic stock market: quotes, trades inside the quote, 1-minute bars.

Pure and clock-free: callers pass the current time in, so tests can drive it with fixed timestamps.
Every symbol has its own random generator derived from (seed, symbol), so the sequence of one symbol
does not depend on which other symbols are active or in what order they are stepped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from schemas.timestamps import NS_PER_SECOND

TICKS_PER_DOLLAR = 100  # prices move in 0.01 ticks
MINUTE_NS = 60 * NS_PER_SECOND
SHARES_PER_LOT = 100
TAPE = "C"
QUOTE_CONDITIONS = ("R",)
TRADE_CONDITIONS = ("@",)
# Venues that post most US equity quotes; all are members of alpaca-py's Exchange enum.
EXCHANGES = ("V", "Q", "P", "N", "K", "Z", "Y", "J", "U", "B", "X", "A", "H")
TRADE_PROBABILITY = 0.25  # trades arrive at about a quarter of the quote rate
_N_EXCHANGES = len(EXCHANGES)
_BID_STEPS = (-1, 0, 0, 1)  # a drift-free walk that stays put half the time
BAD_QUOTE_KINDS = ("crossed", "locked", "zero", "negative", "out_of_order")


def _price(ticks: int) -> float:
    # int / int is correctly rounded, so 12345 ticks prints as exactly 123.45
    return ticks / TICKS_PER_DOLLAR


@dataclass
class _BarBuilder:
    """Accumulates one minute of trades into OHLCV + count + VWAP."""

    start_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    count: int = 0
    notional: int = 0  # sum(price_ticks * size), exact

    def add(self, price: int, size: int) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += size
        self.count += 1
        self.notional += price * size

    def message(self, symbol: str) -> dict[str, Any]:
        return {
            "T": "b",
            "S": symbol,
            "o": _price(self.open),
            "h": _price(self.high),
            "l": _price(self.low),
            "c": _price(self.close),
            "v": self.volume,
            "n": self.count,
            "vw": round(self.notional / self.volume / TICKS_PER_DOLLAR, 6),
            "t": self.start_ns,
        }


@dataclass
class _SymbolState:
    """The random walk and bookkeeping of one symbol."""

    rng: random.Random
    bid: int  # ticks
    spread: int  # ticks
    last_t: int = 0
    trade_id: int = 0
    bar: _BarBuilder | None = field(default=None)


class MarketModel:
    """Generates Alpaca-shaped data messages (``t`` as integer ns) for any number of symbols."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._states: dict[str, _SymbolState] = {}

    def _new_state(self, symbol: str) -> _SymbolState:
        # str seeds are hashed with SHA-512 by random.seed: stable across runs and processes
        rng = random.Random(f"tickwire-feed:{self.seed}:{symbol}")
        start = rng.randint(20 * TICKS_PER_DOLLAR, 500 * TICKS_PER_DOLLAR)
        return _SymbolState(rng=rng, bid=start, spread=rng.randint(1, 3))

    def _state(self, symbol: str) -> _SymbolState:
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = self._new_state(symbol)
        return state

    def start_price(self, symbol: str) -> float:
        """The initial bid of ``symbol``: plausible ($20-$500) and fixed by (seed, symbol)."""
        return _price(self._new_state(symbol).bid)

    def next_timestamp(self, symbol: str, now_ns: int) -> int:
        """Claim the next timestamp of ``symbol``'s tape (``now_ns``, but strictly increasing)."""
        state = self._state(symbol)
        state.last_t = max(now_ns, state.last_t + 1)
        return state.last_t

    def current_quote(self, symbol: str, now_ns: int) -> dict[str, Any]:
        """A quote at ``symbol``'s current bid and ask, without moving the market."""
        state = self._state(symbol)
        return self._quote(symbol, state.bid, state.bid + state.spread, self.next_timestamp(symbol, now_ns))

    def bad_quote(self, symbol: str, kind: str, now_ns: int) -> dict[str, Any]:
        """A deliberately bad quote around ``symbol``'s current price (see ``BAD_QUOTE_KINDS``).

        ``out_of_order`` is a sane quote stamped one second before the symbol's latest message.
        """
        if kind not in BAD_QUOTE_KINDS:
            raise ValueError(f"unknown bad quote kind {kind!r}; known: {', '.join(BAD_QUOTE_KINDS)}")
        state = self._state(symbol)
        bid, ask = state.bid, state.bid + state.spread
        if kind == "crossed":
            bid, ask = ask + 1, bid  # the bid above the ask
        elif kind == "locked":
            ask = bid
        elif kind == "zero":
            bid = 0
        elif kind == "negative":
            bid = -bid
        if kind == "out_of_order":
            t = max(1, max(now_ns, state.last_t) - NS_PER_SECOND)
        else:
            t = self.next_timestamp(symbol, now_ns)
        return self._quote(symbol, bid, ask, t)

    @staticmethod
    def _quote(symbol: str, bid: int, ask: int, t: int) -> dict[str, Any]:
        return {
            "T": "q",
            "S": symbol,
            "bx": EXCHANGES[0],
            "bp": _price(bid),
            "bs": 1,
            "ax": EXCHANGES[1],
            "ap": _price(ask),
            "as": 1,
            "c": list(QUOTE_CONDITIONS),
            "z": TAPE,
            "t": t,
        }

    def next_events(self, symbol: str, now_ns: int) -> list[dict[str, Any]]:
        """One quote for ``symbol`` and, about one time in four, a trade inside that quote.

        If the trade starts a new minute, the finished bar of the previous minute comes first.
        Timestamps are ``now_ns`` but strictly increasing per symbol.
        """
        state = self._state(symbol)
        draw = state.rng.random  # one primitive draw per field: several times faster than randint/choice
        state.bid = max(1, state.bid + _BID_STEPS[int(draw() * 4)])
        state.spread = min(3, max(1, state.spread + int(draw() * 3) - 1))
        ask = state.bid + state.spread
        quote_t = state.last_t = max(now_ns, state.last_t + 1)
        events: list[dict[str, Any]] = [
            {
                "T": "q",
                "S": symbol,
                "bx": EXCHANGES[int(draw() * _N_EXCHANGES)],
                "bp": _price(state.bid),
                "bs": 1 + int(draw() * 10),
                "ax": EXCHANGES[int(draw() * _N_EXCHANGES)],
                "ap": _price(ask),
                "as": 1 + int(draw() * 10),
                "c": list(QUOTE_CONDITIONS),
                "z": TAPE,
                "t": quote_t,
            }
        ]
        if draw() < TRADE_PROBABILITY:
            price = state.bid + int(draw() * (state.spread + 1))  # anywhere from bid to ask
            size = (1 + int(draw() * 10)) * SHARES_PER_LOT
            exchange = EXCHANGES[int(draw() * _N_EXCHANGES)]
            trade_t = state.last_t = quote_t + 1
            events.extend(self._roll_bar(symbol, state, trade_t))
            state.trade_id += 1
            events.append(
                {
                    "T": "t",
                    "S": symbol,
                    "i": state.trade_id,
                    "x": exchange,
                    "p": _price(price),
                    "s": size,
                    "c": list(TRADE_CONDITIONS),
                    "z": TAPE,
                    "t": trade_t,
                }
            )
            if state.bar is None:
                state.bar = _BarBuilder(trade_t - trade_t % MINUTE_NS, price, price, price, price)
            state.bar.add(price, size)
        return events

    def close_bars(self, now_ns: int) -> list[dict[str, Any]]:
        """Bars of every symbol whose minute ended at or before ``now_ns`` (each emitted once)."""
        bars: list[dict[str, Any]] = []
        for symbol, state in self._states.items():
            bars.extend(self._roll_bar(symbol, state, now_ns))
        return bars

    @staticmethod
    def _roll_bar(symbol: str, state: _SymbolState, now_ns: int) -> list[dict[str, Any]]:
        bar = state.bar
        if bar is None or now_ns < bar.start_ns + MINUTE_NS:
            return []
        state.bar = None
        return [bar.message(symbol)]
