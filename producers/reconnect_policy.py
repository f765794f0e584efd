"""ReconnectPolicy: how long the ingest waits before it reconnects to Alpaca after a failure."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# 2**this already exceeds any sane cap / base ratio; keeps the arithmetic finite after many failures.
_MAX_EXPONENT = 32


@dataclass
class ReconnectPolicy:
    """Exponential backoff with jitter: ``base``, 2 * ``base``, 4 * ``base`` … capped at ``cap``.

    Each delay is the nominal one reduced by a random fraction up to ``jitter`` (so the cap is never
    exceeded and restarted instances spread out). :meth:`record_success` resets the sequence. After
    ``max_attempts`` failures in a row the policy is *exhausted*: the ingest reports itself unhealthy
    and every further attempt waits the cap. It never gives up.
    """

    base: float = 5.0
    cap: float = 300.0
    jitter: float = 0.2
    max_attempts: int = 10
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempts: int = 0  # failures since the last success

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError(f"need 0 < base <= cap, got base={self.base} cap={self.cap}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter}")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")

    def nominal_delay(self, attempt: int) -> float:
        """The delay before failure number ``attempt`` (1-based) is retried, before jitter."""
        if attempt > self.max_attempts:
            return self.cap
        return min(self.cap, self.base * 2 ** min(attempt - 1, _MAX_EXPONENT))

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next attempt."""
        self.attempts += 1
        return self.nominal_delay(self.attempts) * (1.0 - self.jitter * self.rng.random())

    def record_success(self) -> None:
        """A connection succeeded: the next failure starts again at ``base``."""
        self.attempts = 0

    @property
    def exhausted(self) -> bool:
        """True after ``max_attempts`` failures in a row (the service reports unhealthy)."""
        return self.attempts >= self.max_attempts
