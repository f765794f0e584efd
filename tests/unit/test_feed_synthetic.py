"""Unit tests of the synthetic generator's timing: when each symbol's quotes fall due, frame by frame."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter

from alpaca_feed.hub import FeedHub
from alpaca_feed.market import EventRates, MarketModel
from alpaca_feed.synthetic import CATCH_UP_SECONDS, STAGGERED_FRAME_SECONDS, SyntheticFeed

SYMBOLS = [f"S{i:03d}" for i in range(100)]
RATE = 10.0  # quotes/s per symbol: the bench's 1,000/s over 100 symbols


def feed(staggered: bool, hub: FeedHub | None = None) -> SyntheticFeed:
    """A generator over SYMBOLS (simulated without subscribers), never started: the tests call ``tick``."""
    model = MarketModel(1, events=EventRates.none())
    return SyntheticFeed(hub or FeedHub(), model, RATE, publish=lambda events: None, always=SYMBOLS,
                         staggered=staggered)


def frames(generator: SyntheticFeed, count: int, elapsed: float) -> list[list[str]]:
    """The quoted symbols of ``count`` ticks of ``elapsed`` seconds each, after the first (every symbol's first
    quote, at once)."""
    generator.tick(elapsed)
    return [[e["S"] for e in generator.tick(elapsed) if e["T"] == "q"] for _ in range(count)]


async def test_staggered_given_10_quotes_per_s_each_symbol_quotes_at_its_own_random_times() -> None:
    """Test that staggered arrivals keep the rate, put only a few symbols in each 5 ms frame, and space each
    symbol's quotes irregularly (a Poisson process: gaps as spread as their mean)."""
    # Act: 10 simulated seconds of 5 ms frames
    seen = frames(feed(staggered=True), 2_000, STAGGERED_FRAME_SECONDS)
    # Assert
    total = sum(len(frame) for frame in seen)
    assert abs(total - 10 * RATE * len(SYMBOLS)) < 0.05 * 10 * RATE * len(SYMBOLS)
    assert max(len(set(frame)) for frame in seen) < len(SYMBOLS) // 4
    arrivals: dict[str, list[int]] = {}
    for index, frame in enumerate(seen):
        for symbol in frame:
            arrivals.setdefault(symbol, []).append(index)
    assert set(arrivals) == set(SYMBOLS)
    gaps = [b - a for times in arrivals.values() for a, b in itertools.pairwise(times)]
    assert statistics.pstdev(gaps) > 0.7 * statistics.fmean(gaps)


async def test_lockstep_given_the_same_rate_quotes_every_symbol_in_the_same_frames() -> None:
    """Test the default, the bench's bursty shape: every symbol quotes at the same ticks, all in one frame."""
    seen = frames(feed(staggered=False), 20, 1 / RATE)
    assert all(sorted(frame) == SYMBOLS for frame in seen)


async def test_staggered_given_a_halted_symbol_and_a_stall_quotes_no_halted_symbol_and_catches_up_a_quarter_second(
) -> None:
    """Test that a halted symbol gets no quotes, and that after a 5 s stall the generator makes up at most
    CATCH_UP_SECONDS of quotes, not the whole stall."""
    # Arrange
    hub = FeedHub()
    generator = feed(staggered=True, hub=hub)
    generator.tick(STAGGERED_FRAME_SECONDS)
    hub.halted.add("S000")
    # Act
    after_stall = Counter(e["S"] for e in generator.tick(5.0) if e["T"] == "q")
    # Assert
    assert "S000" not in after_stall
    expected = RATE * len(SYMBOLS) * CATCH_UP_SECONDS
    assert 0.8 * expected < sum(after_stall.values()) < 1.2 * expected
