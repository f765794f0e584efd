"""DayShape: the quote rate of a trading day compressed into a soak, shaped like a day and adding up to its total.

The rate is constant within each phase: the opening burst (the first tenth at 2 x the day's average), the
morning, the midday lull (a fifth around the middle at half the average), the afternoon and the closing burst
(the last tenth at 1.5 x). The morning and the afternoon run at the one level that makes the whole day's
quotes exactly ``quotes`` (with the defaults 11/12 of the average, so the lull is the quietest part).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True, slots=True)
class Phase:
    """One stretch of the day at one rate: ``[start_s, end_s)`` seconds into it."""

    name: str
    start_s: float
    end_s: float
    rate: float  # quotes/s over all symbols


@dataclass(frozen=True)
class DayShape:
    """``quotes`` quotes over ``seconds``; shares are fractions of the day, factors multiples of its average rate."""

    quotes: float
    seconds: float
    open_share: float = 0.1
    open_factor: float = 2.0
    lull_share: float = 0.2  # centred on the middle of the day
    lull_factor: float = 0.5
    close_share: float = 0.1
    close_factor: float = 1.5

    def __post_init__(self) -> None:
        if self.quotes < 0 or self.seconds <= 0:
            raise ValueError(f"a day needs quotes >= 0 and seconds > 0, not {self.quotes} over {self.seconds}")
        if min(self.open_share, self.lull_share, self.close_share) < 0 or self.rest_share <= 0:
            raise ValueError("the opening, the lull and the close must leave part of the day to the rest")
        # The opening and the close may not meet the lull: the morning and the afternoon exist.
        if self.open_share > 0.5 - self.lull_share / 2 or self.close_share > 0.5 - self.lull_share / 2:
            raise ValueError("the opening and the close must end before the lull and start after it")
        if self.rest_factor <= 0:
            raise ValueError("the opening, the lull and the close hold more than the day's quotes")

    @classmethod
    def flat(cls, rate: float, seconds: float) -> DayShape:
        """One rate all day (the constant-rate soak)."""
        return cls(rate * seconds, seconds, open_factor=1.0, lull_factor=1.0, close_factor=1.0)

    @property
    def average(self) -> float:
        """The day's average rate, quotes/s."""
        return self.quotes / self.seconds

    @property
    def rest_share(self) -> float:
        """The fraction of the day outside the opening, the lull and the close."""
        return 1.0 - self.open_share - self.lull_share - self.close_share

    @property
    def rest_factor(self) -> float:
        """The morning's and the afternoon's multiple of the average: what the other phases leave of the day."""
        special = self.open_share * self.open_factor + self.lull_share * self.lull_factor \
            + self.close_share * self.close_factor
        return (1.0 - special) / self.rest_share

    @cached_property
    def phases(self) -> tuple[Phase, ...]:
        """The five phases in order; together they cover ``[0, seconds)``."""
        d, avg = self.seconds, self.average
        lull_start, lull_end = d * (0.5 - self.lull_share / 2), d * (0.5 + self.lull_share / 2)
        bounds = (("open", 0.0, d * self.open_share, self.open_factor),
                  ("morning", d * self.open_share, lull_start, self.rest_factor),
                  ("lull", lull_start, lull_end, self.lull_factor),
                  ("afternoon", lull_end, d * (1.0 - self.close_share), self.rest_factor),
                  ("close", d * (1.0 - self.close_share), d, self.close_factor))
        return tuple(Phase(name, start, end, factor * avg) for name, start, end, factor in bounds if end > start)

    def phase_at(self, t: float) -> Phase | None:
        """The phase ``t`` seconds into the day falls in (None before it starts or once it is over)."""
        return next((p for p in self.phases if p.start_s <= t < p.end_s), None)

    def rate_at(self, t: float) -> float:
        """Quotes/s at ``t`` seconds into the day (0 outside it)."""
        phase = self.phase_at(t)
        return phase.rate if phase else 0.0

    def quotes_between(self, t0: float, t1: float) -> float:
        """The quotes the shape asks for from ``t0`` to ``t1`` seconds into the day: the rate's integral."""
        return sum(p.rate * max(0.0, min(t1, p.end_s) - max(t0, p.start_s)) for p in self.phases)

    def target_rate(self, t0: float, t1: float) -> float:
        """The average rate the shape asks for from ``t0`` to ``t1``."""
        return self.quotes_between(t0, t1) / (t1 - t0) if t1 > t0 else self.rate_at(t0)
