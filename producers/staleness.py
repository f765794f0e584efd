"""StalenessMonitor: tells a quiet symbol from a mute socket, aware of market hours and trading halts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from schemas.timestamps import NS_PER_SECOND

NEW_YORK = ZoneInfo("America/New_York")
MarketHoursMode = Literal["always", "extended", "regular"]
# US equity sessions in New York time; IEX quotes flow in the extended session (04:00-20:00).
_SESSIONS: dict[str, tuple[time, time]] = {
    "extended": (time(4, 0), time(20, 0)),
    "regular": (time(9, 30), time(16, 0)),
}
# Trading status codes (``sc`` of ``T: "s"`` messages): CTA 2 = halt; UTP H = halt, P = volatility pause.
HALT_CODES = frozenset({"2", "H", "P"})
# CTA 3 = resume; UTP T = trading resumption, Q = quotation resumption (quotes flow again).
RESUME_CODES = frozenset({"3", "T", "Q"})


class MarketHours:
    """Whether data is expected now: ``always`` (local or test feed), or the US ``extended``/``regular``
    session on weekdays. Exchange holidays are not known: on one, a silent feed looks mute and is
    reconnected every ``mute_after`` seconds, which is harmless."""

    def __init__(self, mode: MarketHoursMode) -> None:
        if mode != "always" and mode not in _SESSIONS:
            raise ValueError(f"unknown market hours mode {mode!r}")
        self.mode = mode

    def is_open(self, now: datetime) -> bool:
        """True if the market (as configured) is open at the aware datetime ``now``."""
        if self.mode == "always":
            return True
        local = now.astimezone(NEW_YORK)
        if local.weekday() >= 5:
            return False
        start, end = _SESSIONS[self.mode]
        return start <= local.time() < end


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
    """

    def __init__(self, mute_after_s: float, quiet_after_s: float, market_hours: MarketHours) -> None:
        self.mute_after_ns = int(mute_after_s * NS_PER_SECOND)
        self.quiet_after_ns = int(quiet_after_s * NS_PER_SECOND)
        self.market_hours = market_hours
        self.halted: set[str] = set()

    def on_status(self, symbol: str, code: object) -> None:
        """Record a trading status message (halts silence a symbol legitimately)."""
        if type(code) is not str:  # malformed (a list would not even hash): not a status we know
            return
        if code in HALT_CODES:
            self.halted.add(symbol)
        elif code in RESUME_CODES:
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
