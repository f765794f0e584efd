"""Planned bursts of the synthetic rate: ``FACTORxSECONDS[@WHEN]``, e.g. ``10x1@open``.

WHEN is ``open`` (the default: the regular open, 09:30 New York time each trading day on the ``us``
calendar, or the server start on the ``always`` calendar), a number of seconds after the start
(``@30``), or a period (``@every60``: 60 s after the start, then every 60 s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from alpaca_feed.hours import MarketHours
from schemas.timestamps import NS_PER_SECOND

_NUMBER = r"\d+(?:\.\d+)?"
_SPEC = re.compile(rf"^(?P<factor>{_NUMBER})x(?P<seconds>{_NUMBER})(?:@(?P<when>open|every{_NUMBER}|{_NUMBER}))?$")


@dataclass(frozen=True)
class BurstPlan:
    """One planned burst: the rate times ``factor`` for ``seconds`` at ``when``."""

    factor: float
    seconds: float
    when: str = "open"  # "open", "at" or "every"
    at_s: float = 0.0  # for "at"; the period for "every"

    @classmethod
    def parse(cls, spec: str) -> BurstPlan:
        """Parse ``FACTORxSECONDS[@open|@SECONDS|@everySECONDS]``; ValueError when malformed."""
        match = _SPEC.fullmatch(spec.strip())
        if match is None:
            raise ValueError(f"bad burst {spec!r}: expected FACTORxSECONDS[@open|@SECONDS|@everySECONDS] (10x1@open)")
        factor, seconds = float(match["factor"]), float(match["seconds"])
        if factor <= 0 or seconds <= 0:
            raise ValueError(f"bad burst {spec!r}: factor and seconds must be positive")
        when = match["when"] or "open"
        if when == "open":
            return cls(factor, seconds)
        if when.startswith("every"):
            period = float(when[5:])
            if period <= seconds:
                raise ValueError(f"bad burst {spec!r}: the period must be longer than the burst")
            return cls(factor, seconds, "every", period)
        return cls(factor, seconds, "at", float(when))

    def factor_at(self, since_start_s: float, now_ns: int, started_ns: int, hours: MarketHours) -> float:
        """The rate factor this plan asks for now (1.0 outside the burst)."""
        if self.when == "at":
            active = self.at_s <= since_start_s < self.at_s + self.seconds
        elif self.when == "every":
            active = since_start_s >= self.at_s and since_start_s % self.at_s < self.seconds
        else:  # an always-open market "opens" when the server starts
            opened = started_ns if hours.calendar == "always" else hours.open_at(now_ns)
            active = opened <= now_ns < opened + int(self.seconds * NS_PER_SECOND)
        return self.factor if active else 1.0
