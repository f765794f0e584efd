"""The single generator task that turns the market model into live data for all sessions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from alpaca_feed.bursts import BurstPlan
from alpaca_feed.hub import FeedHub
from alpaca_feed.market import HALF_MINUTE_NS, MarketModel
from schemas.timestamps import NS_PER_SECOND, now_ns

log = logging.getLogger(__name__)

MIN_TICK_SECONDS = 0.01
MAX_TICK_SECONDS = 0.1
STAGGERED_FRAME_SECONDS = 0.005  # staggered arrivals: a frame every few ms, as a real feed sends them
# After a stall (a busy machine, a long GC) the generator catches up at most this much time, so an
# overloaded feed slows down rather than dumping a burst; and no tick makes more quotes than this
# (a backlog is worked off over the following ticks).
CATCH_UP_SECONDS = 0.25
MAX_QUOTES_PER_TICK = 2_000  # ~10-20 ms of work: writers (and compression) get the loop often
# Lets bars be emitted just after the (half-)minute mark rather than just before it.
_MARK_SLACK_SECONDS = 0.001


class SyntheticFeed:
    """Emits ``rate_per_symbol`` quotes/s for every subscribed symbol, plus everything the model derives.

    ``publish`` takes each tick's messages (the server's path: history, then the sessions). By default every
    symbol quotes at the same ticks (all of them together, every 10-100 ms); ``staggered`` gives each symbol
    its own random (Poisson) arrival times instead, sent in a frame every ``STAGGERED_FRAME_SECONDS``, so a
    frame carries the few symbols whose quotes fell due in it.
    """

    def __init__(
        self,
        hub: FeedHub,
        model: MarketModel,
        rate_per_symbol: float,
        publish: Callable[[list[dict[str, Any]]], object] | None = None,
        *,
        bursts: Sequence[BurstPlan] = (),
        always: Iterable[str] = (),
        staggered: bool = False,
    ) -> None:
        if rate_per_symbol <= 0:
            raise ValueError("rate_per_symbol must be positive (use no SyntheticFeed to disable data)")
        self._hub = hub
        self._model = model
        self._rate = rate_per_symbol
        self._publish = publish or (lambda events: hub.publish(events, synthetic=True))
        # Tick often enough for the rate, but batch many quotes per tick at high rates.
        self._tick = min(MAX_TICK_SECONDS, max(MIN_TICK_SECONDS, 1.0 / rate_per_symbol))
        self._credits: dict[str, float] = {}  # quotes owed per symbol (staggered: only which symbols it has seen)
        # Staggered: one Poisson process over all symbols, in units of its mean gap (see _staggered).
        self._arrivals = random.Random(f"tickwire-feed-arrivals:{model.seed}") if staggered else None
        self._owed = 0.0
        self._gap = 1.0
        if staggered:
            self._tick = STAGGERED_FRAME_SECONDS
        self._burst_factor = 1.0
        self._burst_until = 0.0  # loop time
        self._plans = tuple(bursts)
        self._always = frozenset(always)  # simulated with or without subscribers
        self._started_loop = 0.0
        self._started_ns = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the generator task on the running loop."""
        if self._task is None:
            self._started_loop = asyncio.get_running_loop().time()
            self._started_ns = now_ns()
            self._task = asyncio.create_task(self._run(), name="alpaca-feed-synthetic")

    async def stop(self) -> None:
        """Cancel the generator task and wait for it."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def burst(self, factor: float, seconds: float) -> None:
        """Multiply the rate by ``factor`` for the next ``seconds``."""
        self._burst_factor = factor
        self._burst_until = asyncio.get_running_loop().time() + seconds

    def current_rate(self, at_ns: int | None = None) -> float:
        """Quotes per second per symbol right now (bursts included, session hours not)."""
        loop_now = asyncio.get_running_loop().time()
        factor = self._burst_factor if self._burst_until and loop_now < self._burst_until else 1.0
        if self._plans:
            at_ns = now_ns() if at_ns is None else at_ns
            since = loop_now - self._started_loop
            for plan in self._plans:
                factor = max(factor, plan.factor_at(since, at_ns, self._started_ns, self._model.hours))
        return self._rate * factor

    def tick(self, elapsed: float) -> list[dict[str, Any]]:
        """Advance the market by ``elapsed`` seconds and return the messages to publish now."""
        now = now_ns()
        events = self._model.timed_events(now)
        symbols = self._hub.market_symbols() | self._always if self._always else self._hub.market_symbols()
        halted = self._hub.halted
        for symbol in list(self._credits):
            if symbol not in symbols:
                del self._credits[symbol]
        rate = self.current_rate(now) * self._model.hours.activity(now)
        backlog_cap = 1.0 + rate * CATCH_UP_SECONDS
        per_tick = max(1, MAX_QUOTES_PER_TICK // max(1, len(symbols)))  # the rest waits for the next tick
        if rate <= 0:  # the market is closed: only the clock's events
            self._credits.clear()
            return events
        if self._arrivals is not None:
            self._staggered(sorted(symbols), halted, rate, elapsed, now, events)
            return events
        generate = self._model.generate
        for symbol in sorted(symbols):
            if symbol in halted:  # a halted symbol neither quotes nor trades
                self._credits[symbol] = 0.0
                continue
            credit = self._credits.get(symbol)
            # A newly subscribed symbol gets its first quote immediately.
            credit = 1.0 if credit is None else min(backlog_cap, credit + rate * elapsed)
            due = min(int(credit), per_tick)
            if due:
                generate(symbol, now, due, events)
            self._credits[symbol] = credit - due
        return events

    def _staggered(self, symbols: list[str], halted: set[str], rate: float, elapsed: float, now: int,
                   events: list[dict[str, Any]]) -> None:
        """The quotes due in this frame: arrivals of one Poisson process at ``rate`` x symbols, each for a symbol
        drawn uniformly, so every symbol's own quotes arrive as a Poisson process at ``rate``."""
        assert self._arrivals is not None
        if not symbols:
            return
        due: dict[str, int] = {}
        for symbol in symbols:
            if symbol not in self._credits:  # a newly subscribed symbol gets its first quote immediately
                self._credits[symbol] = 0.0
                due[symbol] = 1
        total = rate * len(symbols)
        # Owed arrivals grow with time; after a stall at most CATCH_UP_SECONDS' worth are caught up.
        self._owed = min(self._owed + total * elapsed, self._gap + total * CATCH_UP_SECONDS)
        draw = self._arrivals
        arrivals = 0
        while self._owed >= self._gap and arrivals < MAX_QUOTES_PER_TICK:  # the rest waits for the next frame
            self._owed -= self._gap
            self._gap = draw.expovariate(1.0)
            symbol = symbols[int(draw.random() * len(symbols))]
            due[symbol] = due.get(symbol, 0) + 1
            arrivals += 1
        generate = self._model.generate
        for symbol, count in due.items():
            if symbol not in halted:  # a halted symbol neither quotes nor trades
                generate(symbol, now, count, events)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = next_tick = loop.time()
        while True:
            now = loop.time()
            try:
                events = self.tick(now - last)
                if events:
                    self._publish(events)
            except Exception:  # keep the feed alive; a bug here should be loud but not fatal
                log.exception("synthetic feed tick failed")
            last = now
            # A fixed cadence: the time a tick took counts against the wait for the next one.
            next_tick = max(next_tick + self._tick, now)
            until_mark = (HALF_MINUTE_NS - now_ns() % HALF_MINUTE_NS) / NS_PER_SECOND + _MARK_SLACK_SECONDS
            await asyncio.sleep(max(0.0, min(next_tick - loop.time(), until_mark)))
