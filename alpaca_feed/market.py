"""A seeded, deterministic synthetic stock market producing every Alpaca stock message type.

Quotes (a random walk in 0.01 ticks), trades inside the quote, minute bars built from the trades,
daily bars (all of today's trades, after the open), updated bars (a minute bar amended by a late
trade, half a minute later), LULD bands (re-published when the price moves 1% from their
reference), trading statuses (rare volatility pauses and their resumptions), trade corrections and
trade cancels. Each symbol has a previous close and previous daily bar fixed by (seed, symbol).

Pure and clock-free: callers pass the current time in, so tests can drive it with fixed timestamps.
Every symbol has its own random generators derived from (seed, symbol): the sequence of one symbol
does not depend on which other symbols are active, and the quote/trade path does not depend on the
rates of the rarer events (they draw from a second generator).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from alpaca_feed.hours import MarketHours
from alpaca_feed.seed_prices import FALLBACK_SPREAD_CENTS, seed_price
from alpaca_feed.statuses import PAUSE, RESUME, status_message
from schemas.timestamps import NS_PER_SECOND

TICKS_PER_DOLLAR = 100  # prices move in 0.01 ticks
MINUTE_NS = 60 * NS_PER_SECOND
HALF_MINUTE_NS = MINUTE_NS // 2
SHARES_PER_LOT = 100
TAPE = "C"
QUOTE_CONDITIONS = ("R",)
TRADE_CONDITIONS = ("@",)
# Venues that post most US equity quotes; all are members of alpaca-py's Exchange enum.
EXCHANGES = ("V", "Q", "P", "N", "K", "Z", "Y", "J", "U", "B", "X", "A", "H")
TRADE_PROBABILITY = 0.25  # trades arrive at about a quarter of the quote rate
LULD_BAND = 0.05  # tier 1 securities: 5% either side of the reference price
LULD_INDICATOR = "B"
PAUSE_REASON = "LUDP"
_N_EXCHANGES = len(EXCHANGES)
_BID_STEPS = (-1, 0, 0, 1)  # a drift-free walk that stays put half the time
# moving_mid: the bid steps a cent every quote, and with the spread moving by at most a cent the mid always moves.
_MOVING_BID_STEPS = (-1, -1, 1, 1)
BAD_QUOTE_KINDS = ("crossed", "locked", "zero", "negative", "out_of_order")


def _price(ticks: int) -> float:
    # int / int is correctly rounded, so 12345 ticks prints as exactly 123.45
    return ticks / TICKS_PER_DOLLAR


@dataclass(frozen=True)
class EventRates:
    """How often the rarer message types occur (probabilities; 0 turns one off).

    Attributes:
        late_trade: per finished minute bar, a trade stamped in that minute arrives after it closed;
            the amended bar follows as an ``updatedBars`` message at the next half-minute mark.
        correction: per trade, a correction of it follows.
        cancel: per trade, a cancel of it follows.
        pause: per symbol per minute with trades, a volatility trading pause of ``pause_seconds``.
    """

    late_trade: float = 0.05
    correction: float = 0.002
    cancel: float = 0.002
    pause: float = 0.002
    pause_seconds: float = 5.0

    @classmethod
    def none(cls) -> EventRates:
        """Only quotes, trades, LULD bands and bars: no late trades, corrections, cancels or pauses."""
        return cls(late_trade=0.0, correction=0.0, cancel=0.0, pause=0.0)


@dataclass
class _BarBuilder:
    """Accumulates trades into OHLCV + count + VWAP (a minute bar or a daily bar)."""

    start_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    count: int = 0
    notional: int = 0  # sum(price_ticks * size), exact

    @classmethod
    def first(cls, start_ns: int, price: int) -> _BarBuilder:
        return cls(start_ns, price, price, price, price)

    def add(self, price: int, size: int) -> None:
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.volume += size
        self.count += 1
        self.notional += price * size

    def message(self, symbol: str, kind: str = "b") -> dict[str, Any]:
        return {
            "T": kind,
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

    rng: random.Random  # the quote/trade path
    events: random.Random  # rare events, so their rates do not change the path
    bid: int  # ticks
    spread: int  # ticks
    prev_close: int  # ticks
    min_spread: int  # ticks: the spread walks between these
    max_spread: int
    prev_day: dict[str, Any]  # the previous daily bar's fields (its ``t`` is set on use)
    last_t: int = 0
    trade_id: int = 0
    bar: _BarBuilder | None = field(default=None)  # this minute
    day: _BarBuilder | None = field(default=None)  # today so far
    day_end: int = 0
    updated: tuple[_BarBuilder, int] | None = None  # an amended minute bar and when it is due
    luld_ref: int = 0  # reference price of the bands last published (ticks); 0 = none yet
    paused_until: int = 0  # ns; 0 = trading


class MarketModel:
    """Generates Alpaca-shaped data messages (``t`` as integer ns) for any number of symbols.

    Args:
        seed: fixes every price path, previous close and rare event.
        events: rates of the rarer message types (default: realistic, rare).
        hours: the session calendar (default ``always``: open around the clock).
        moving_mid: every quote moves the mid (the bid steps a cent each quote; by default it stays put half
            the time, and about one quote in six leaves the mid where it was).
    """

    def __init__(self, seed: int = 0, *, events: EventRates | None = None, hours: MarketHours | None = None,
                 moving_mid: bool = False) -> None:
        self.seed = seed
        self.events = events or EventRates()
        self.hours = hours or MarketHours()
        self.moving_mid = moving_mid
        self._states: dict[str, _SymbolState] = {}

    # --- state --------------------------------------------------------------------------------

    def _new_state(self, symbol: str) -> _SymbolState:
        # str seeds are hashed with SHA-512 by random.seed: stable across runs and processes
        rng = random.Random(f"tickwire-feed:{self.seed}:{symbol}")
        events = random.Random(f"tickwire-feed-events:{self.seed}:{symbol}")
        start = rng.randint(20 * TICKS_PER_DOLLAR, 500 * TICKS_PER_DOLLAR)  # drawn always: paths stay seeded
        known = seed_price(symbol)
        if known is None:
            min_spread, max_spread = FALLBACK_SPREAD_CENTS
            prev_close = max(1, round(start * (1 + events.uniform(-0.02, 0.02))))  # an overnight gap
        else:  # a well-known symbol: yesterday closed at its reference price, today opens near it
            min_spread, max_spread = known.min_spread_cents, known.max_spread_cents
            prev_close = round(float(known.close) * TICKS_PER_DOLLAR)
            start = max(1, round(prev_close * (1 + events.uniform(-0.01, 0.01))))
        prev_open = max(1, round(prev_close * (1 + events.uniform(-0.015, 0.015))))
        high = round(max(prev_open, prev_close) * (1 + events.uniform(0, 0.01)))
        low = max(1, round(min(prev_open, prev_close) * (1 - events.uniform(0, 0.01))))
        volume = events.randint(5_000, 500_000) * SHARES_PER_LOT
        prev_day = {
            "o": _price(prev_open),
            "h": _price(high),
            "l": _price(low),
            "c": _price(prev_close),
            "v": volume,
            "n": volume // (SHARES_PER_LOT * 3),
            "vw": round((prev_open + high + low + prev_close) / 4 / TICKS_PER_DOLLAR, 6),
        }
        return _SymbolState(
            rng=rng, events=events, bid=start, spread=rng.randint(min_spread, max_spread), prev_close=prev_close,
            min_spread=min_spread, max_spread=max_spread, prev_day=prev_day,
        )

    def _state(self, symbol: str) -> _SymbolState:
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = self._new_state(symbol)
        return state

    def knows(self, symbol: str) -> bool:
        """Whether ``symbol`` has been simulated (or asked about) since the model started."""
        return symbol in self._states

    def start_price(self, symbol: str) -> float:
        """The initial bid of ``symbol``: near its reference close for a well-known symbol (``SEED_PRICES``),
        else plausible ($20-$500); fixed by (seed, symbol) either way."""
        return _price(self._new_state(symbol).bid)

    def previous_close(self, symbol: str) -> float:
        """The previous trading day's close of ``symbol`` (fixed by seed until a day rolls over)."""
        return _price(self._state(symbol).prev_close)

    def previous_daily_bar(self, symbol: str, now_ns: int) -> dict[str, Any]:
        """The previous trading day's bar (``T: d``), stamped at that day's midnight New York time."""
        state = self._state(symbol)
        return {"T": "d", "S": symbol, **state.prev_day, "t": self.hours.previous_day_start(now_ns)}

    def daily_bar(self, symbol: str) -> dict[str, Any] | None:
        """Today's bar so far (``T: d``), or None before ``symbol``'s first trade today."""
        state = self._states.get(symbol)
        return None if state is None or state.day is None else state.day.message(symbol, "d")

    def next_timestamp(self, symbol: str, now_ns: int) -> int:
        """Claim the next timestamp of ``symbol``'s tape (``now_ns``, but strictly increasing)."""
        state = self._state(symbol)
        state.last_t = max(now_ns, state.last_t + 1)
        return state.last_t

    # --- one-off quotes -----------------------------------------------------------------------

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
            "c": QUOTE_CONDITIONS,
            "z": TAPE,
            "t": t,
        }

    # --- the stream ---------------------------------------------------------------------------

    def next_events(self, symbol: str, now_ns: int) -> list[dict[str, Any]]:
        """One quote for ``symbol`` and, about one time in four, a trade inside that quote.

        Around them: the finished minute (and daily) bar when the trade starts a new minute, new LULD
        bands when the price moved, and now and then a correction or cancel of the trade. Nothing
        while the symbol is in a volatility pause. Timestamps are ``now_ns`` but strictly increasing
        per symbol (a late trade, by design, is the one exception).
        """
        out: list[dict[str, Any]] = []
        self.generate(symbol, now_ns, 1, out)
        return out

    def generate(self, symbol: str, now_ns: int, count: int, out: list[dict[str, Any]]) -> None:
        """``count`` steps of :meth:`next_events` for ``symbol``, appended to ``out`` (the hot path:
        one call per symbol and tick, with every lookup hoisted out of the loop)."""
        state = self._states.get(symbol) or self._state(symbol)
        draw = state.rng.random  # one primitive draw per field: several times faster than randint/choice
        append = out.append
        amend = self.events.correction or self.events.cancel
        min_spread, max_spread = state.min_spread, state.max_spread
        steps = _MOVING_BID_STEPS if self.moving_mid else _BID_STEPS  # as many draws either way: paths stay seeded
        for _ in range(count):
            if state.paused_until:
                if now_ns < state.paused_until:
                    return
                append(self._resume(symbol, state, now_ns))
            bid = state.bid + steps[int(draw() * 4)]
            state.bid = bid = bid if bid > 1 else 1
            spread = state.spread + int(draw() * 3) - 1
            spread = min_spread if spread < min_spread else (max_spread if spread > max_spread else spread)
            state.spread = spread
            quote_t = state.last_t + 1
            if now_ns > quote_t:
                quote_t = now_ns
            state.last_t = quote_t
            append(
                {
                    "T": "q",
                    "S": symbol,
                    "bx": EXCHANGES[int(draw() * _N_EXCHANGES)],
                    "bp": bid / TICKS_PER_DOLLAR,
                    "bs": 1 + int(draw() * 10),
                    "ax": EXCHANGES[int(draw() * _N_EXCHANGES)],
                    "ap": (bid + spread) / TICKS_PER_DOLLAR,
                    "as": 1 + int(draw() * 10),
                    "c": QUOTE_CONDITIONS,
                    "z": TAPE,
                    "t": quote_t,
                }
            )
            ref = state.luld_ref
            if not ref or abs(bid - ref) * 100 >= ref:  # first quote, or a 1% move: new bands
                append(self._luld(symbol, state))
            if draw() < TRADE_PROBABILITY:
                price = bid + int(draw() * (spread + 1))  # anywhere from bid to ask
                size = (1 + int(draw() * 10)) * SHARES_PER_LOT
                exchange = EXCHANGES[int(draw() * _N_EXCHANGES)]
                trade_t = state.last_t = state.last_t + 1  # after the bands, when they came
                bar = state.bar
                if bar is not None and trade_t >= bar.start_ns + MINUTE_NS:
                    out.extend(self._roll_bar(symbol, state, trade_t))
                trade = self._trade(symbol, state, price, size, exchange, trade_t)
                append(trade)
                if amend:
                    out.extend(self._amendments(symbol, state, trade))

    def timed_events(self, now_ns: int) -> list[dict[str, Any]]:
        """What the clock alone produces by ``now_ns``: finished minute bars (with daily bars, late
        trades and pause starts), updated bars due at a half-minute mark, and pause ends."""
        out: list[dict[str, Any]] = []
        for symbol, state in self._states.items():
            if state.bar is not None or state.updated is not None or state.paused_until:
                out.extend(self._roll_bar(symbol, state, now_ns))
                updated = state.updated
                if updated is not None and now_ns >= updated[1]:
                    state.updated = None
                    out.append(updated[0].message(symbol, "u"))
                if state.paused_until and now_ns >= state.paused_until:
                    out.append(self._resume(symbol, state, now_ns))
        return out

    def close_bars(self, now_ns: int) -> list[dict[str, Any]]:
        """Alias of :meth:`timed_events` (the clock's events include the finished bars)."""
        return self.timed_events(now_ns)

    # --- pieces -------------------------------------------------------------------------------

    def _trade(
        self, symbol: str, state: _SymbolState, price: int, size: int, exchange: str, t: int
    ) -> dict[str, Any]:
        state.trade_id += 1
        if state.bar is None:
            state.bar = _BarBuilder(t - t % MINUTE_NS, price, price, price, price, size, 1, price * size)
        else:
            state.bar.add(price, size)
        if state.day is None or t >= state.day_end:
            self._roll_day(state, t, price)
        state.day.add(price, size)  # type: ignore[union-attr]  # set by _roll_day
        return {
            "T": "t",
            "S": symbol,
            "i": state.trade_id,
            "x": exchange,
            "p": _price(price),
            "s": size,
            "c": TRADE_CONDITIONS,
            "z": TAPE,
            "t": t,
        }

    def _roll_day(self, state: _SymbolState, t: int, price: int) -> None:
        if state.day is not None:  # yesterday becomes the previous daily bar
            finished = state.day.message("", "d")
            state.prev_day = {key: finished[key] for key in ("o", "h", "l", "c", "v", "n", "vw")}
            state.prev_close = state.day.close
        state.day = _BarBuilder.first(self.hours.day_start(t), price)
        state.day_end = self.hours.next_day_start(t)

    def _roll_bar(self, symbol: str, state: _SymbolState, now_ns: int) -> list[dict[str, Any]]:
        bar = state.bar
        if bar is None or now_ns < bar.start_ns + MINUTE_NS:
            return []
        state.bar = None
        out = [bar.message(symbol)]
        if state.day is not None and self.hours.opened(bar.start_ns):  # minutes from the open on
            out.append(state.day.message(symbol, "d"))
        rates = self.events
        rare = state.events.random
        if rates.late_trade and rare() < rates.late_trade:
            out.append(self._late_trade(symbol, state, bar))
        if rates.pause and not state.paused_until and rare() < rates.pause:
            state.paused_until = now_ns + int(rates.pause_seconds * NS_PER_SECOND)
            out.append(status_message(symbol, PAUSE, PAUSE_REASON, self.next_timestamp(symbol, now_ns)))
        return out

    def _late_trade(self, symbol: str, state: _SymbolState, bar: _BarBuilder) -> dict[str, Any]:
        """A trade of the finished minute reported after it closed; the bar is amended and due as
        ``updatedBars`` at the next half-minute mark."""
        rare = state.events.random
        t = bar.start_ns + MINUTE_NS - 1 - int(rare() * NS_PER_SECOND)  # in the last second of the minute
        price = bar.close + int(rare() * 3) - 1
        size = (1 + int(rare() * 5)) * SHARES_PER_LOT
        bar.add(price, size)
        if state.day is not None:
            state.day.add(price, size)
        state.trade_id += 1
        state.updated = (bar, bar.start_ns + MINUTE_NS + HALF_MINUTE_NS)
        return {
            "T": "t",
            "S": symbol,
            "i": state.trade_id,
            "x": EXCHANGES[int(rare() * _N_EXCHANGES)],
            "p": _price(price),
            "s": size,
            "c": TRADE_CONDITIONS,
            "z": TAPE,
            "t": t,
        }

    def _amendments(self, symbol: str, state: _SymbolState, trade: dict[str, Any]) -> list[dict[str, Any]]:
        """Now and then a correction (new price, new id) or a cancel of ``trade``."""
        rare = state.events.random
        rates = self.events
        if rates.correction and rare() < rates.correction:
            state.trade_id += 1
            corrected = trade["p"] + (0.01 if rare() < 0.5 else -0.01)
            return [
                {
                    "T": "c",
                    "S": symbol,
                    "x": trade["x"],
                    "oi": trade["i"],
                    "op": trade["p"],
                    "os": trade["s"],
                    "oc": TRADE_CONDITIONS,
                    "ci": state.trade_id,
                    "cp": round(corrected, 2),
                    "cs": trade["s"],
                    "cc": TRADE_CONDITIONS,
                    "z": TAPE,
                    "t": self.next_timestamp(symbol, trade["t"]),
                }
            ]
        if rates.cancel and rare() < rates.cancel:
            return [
                {
                    "T": "x",
                    "S": symbol,
                    "i": trade["i"],
                    "x": trade["x"],
                    "p": trade["p"],
                    "s": trade["s"],
                    "a": "C",
                    "z": TAPE,
                    "t": self.next_timestamp(symbol, trade["t"]),
                }
            ]
        return []

    def _luld(self, symbol: str, state: _SymbolState) -> dict[str, Any]:
        ref = state.luld_ref = state.bid
        return {
            "T": "l",
            "S": symbol,
            "u": _price(round(ref * (1 + LULD_BAND))),
            "d": _price(round(ref * (1 - LULD_BAND))),
            "i": LULD_INDICATOR,
            "t": self.next_timestamp(symbol, state.last_t),
            "z": TAPE,
        }

    def _resume(self, symbol: str, state: _SymbolState, now_ns: int) -> dict[str, Any]:
        state.paused_until = 0
        return status_message(symbol, RESUME, PAUSE_REASON, self.next_timestamp(symbol, now_ns))
