"""StalenessMonitor: tells a quiet symbol from a mute socket, aware of the feed's trading hours and halts.

What "trading hours" and "halted" mean is the feed's: a source passes its :class:`MarketHours` and the
status codes that halt and resume a symbol (the stock feed's are in producers/stock_source.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from schemas.timestamps import NS_PER_SECOND

WEEKDAYS = frozenset(range(5))  # Monday .. Friday


@dataclass(frozen=True)
class Session:
    """A daily trading window in its exchange's time zone, on the given weekdays (0 = Monday)."""

    zone: ZoneInfo
    opens: time
    closes: time
    weekdays: frozenset[int] = WEEKDAYS

    def is_open(self, now: datetime) -> bool:
        """True if the aware datetime ``now`` falls inside this window."""
        local = now.astimezone(self.zone)
        return local.weekday() in self.weekdays and self.opens <= local.time() < self.closes


class MarketHours:
    """Whether a feed's data is expected now: ``always`` (a 24/7 feed, a local or test feed), or inside the
    session named ``mode`` among the feed's ``sessions``. Exchange holidays are not known: on one, a silent
    feed looks mute and is reconnected every ``mute_after`` seconds, which is harmless."""

    def __init__(self, mode: str, sessions: Mapping[str, Session] | None = None) -> None:
        self.session = (sessions or {}).get(mode)
        if mode != "always" and self.session is None:
            raise ValueError(f"unknown market hours mode {mode!r}")
        self.mode = mode

    def is_open(self, now: datetime) -> bool:
        """True if the market (as configured) is open at the aware datetime ``now``."""
        return self.session is None or self.session.is_open(now)


@dataclass(frozen=True)
class Staleness:
    """The verdict of one check: reconnect a ``mute`` socket; report ``quiet`` symbols."""

    mute: bool
    quiet: tuple[str, ...]
    silent_for_s: float  # how long the whole socket has carried no data


class StalenessMonitor:
    """Per-symbol silence rules. Pure: callers pass the clocks (integer ns, receive time).

    - Market closed, nothing subscribed, or every subscribed symbol halted: nothing is stale.
    - No data message at all for ``mute_after_s`` (counted from the last message, or from when the
      socket subscribed): the socket is mute and must be reconnected (alpaca-py issue #740).
    - One symbol silent for ``quiet_after_s`` while the socket carries other data: that symbol is
      quiet (thin trading), reported but no reason to reconnect.

    A trading-status code in ``halts`` silences a symbol legitimately until a code in ``resumes``.
    """

    def __init__(
        self,
        mute_after_s: float,
        quiet_after_s: float,
        market_hours: MarketHours,
        halts: Collection[str] = frozenset(),
        resumes: Collection[str] = frozenset(),
    ) -> None:
        self.mute_after_ns = int(mute_after_s * NS_PER_SECOND)
        self.quiet_after_ns = int(quiet_after_s * NS_PER_SECOND)
        self.market_hours = market_hours
        self.halt_codes = frozenset(halts)
        self.resume_codes = frozenset(resumes)
        self.halted: set[str] = set()

    def on_status(self, symbol: str, code: object) -> None:
        """Record a trading status message (halts silence a symbol legitimately)."""
        if type(code) is not str:  # malformed (a list would not even hash): not a status we know
            return
        if code in self.halt_codes:
            self.halted.add(symbol)
        elif code in self.resume_codes:
            self.halted.discard(symbol)

    def forget(self, symbol: str) -> None:
        """The symbol was unsubscribed."""
        self.halted.discard(symbol)

    def check(
        self,
        now_ns: int,
        subscribed: Iterable[str],
        last_received_ns: Mapping[str, int],
        last_any_ns: int,
        since_ns: int,
    ) -> Staleness:
        """Judge the socket and each symbol at ``now_ns``; ``since_ns`` is when the socket subscribed."""
        live = [s for s in subscribed if s not in self.halted]
        if not live or not self.market_hours.is_open(datetime.fromtimestamp(now_ns / NS_PER_SECOND, tz=UTC)):
            return Staleness(False, (), 0.0)
        socket_silence = now_ns - max(last_any_ns, since_ns)
        mute = socket_silence >= self.mute_after_ns
        quiet = () if mute else tuple(
            s for s in live if now_ns - max(last_received_ns.get(s, 0), since_ns) >= self.quiet_after_ns
        )
        return Staleness(mute, quiet, socket_silence / NS_PER_SECOND)
