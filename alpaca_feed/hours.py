"""US equity session hours for the synthetic market: trading days, pre/regular/post phases, day starts.

Two calendars: ``always`` (the default: every instant is regular trading, days start at midnight New
York time, like Alpaca's test stream which runs around the clock) and ``us`` (weekdays, pre-market
04:00-09:30, regular 09:30-16:00, after-hours 16:00-20:00 New York time; exchange holidays are not
modelled). Day boundaries are computed once per day, so the per-message checks are integer compares.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from schemas.timestamps import NS_PER_SECOND

NEW_YORK = ZoneInfo("America/New_York")
CALENDARS = ("always", "us")
EXTENDED_HOURS_ACTIVITY = 0.25  # pre/post-market message rate relative to regular hours

_PRE_OPEN = time(4, 0)
_OPEN = time(9, 30)
_CLOSE = time(16, 0)
_POST_CLOSE = time(20, 0)


class Phase(enum.Enum):
    """Where the trading day is."""

    CLOSED = "closed"
    PRE = "pre"
    REGULAR = "regular"
    POST = "post"


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * NS_PER_SECOND


class _Day:
    """The boundaries of one New York calendar day, in ns since the epoch."""

    def __init__(self, day: datetime) -> None:
        local = day.astimezone(NEW_YORK)
        date = local.date()

        def at(clock: time) -> int:
            return _ns(datetime.combine(date, clock, tzinfo=NEW_YORK))

        self.start = at(time(0, 0))
        self.end = _ns(datetime.combine(date + timedelta(days=1), time(0, 0), tzinfo=NEW_YORK))
        self.pre_open, self.open, self.close, self.post_close = (
            at(_PRE_OPEN),
            at(_OPEN),
            at(_CLOSE),
            at(_POST_CLOSE),
        )
        self.weekday = date.weekday() < 5


class MarketHours:
    """The session calendar the synthetic market follows (``always`` or ``us``)."""

    def __init__(self, calendar: str = "always") -> None:
        if calendar not in CALENDARS:
            raise ValueError(f"unknown calendar {calendar!r}; known: {', '.join(CALENDARS)}")
        self.calendar = calendar
        self._day: _Day | None = None

    def _day_of(self, ns: int) -> _Day:
        day = self._day
        if day is None or not day.start <= ns < day.end:
            day = self._day = _Day(datetime.fromtimestamp(ns / NS_PER_SECOND, tz=UTC))
        return day

    def phase(self, ns: int) -> Phase:
        """The session phase at ``ns``."""
        if self.calendar == "always":
            return Phase.REGULAR
        day = self._day_of(ns)
        if not day.weekday or ns < day.pre_open or ns >= day.post_close:
            return Phase.CLOSED
        if ns < day.open:
            return Phase.PRE
        return Phase.REGULAR if ns < day.close else Phase.POST

    def activity(self, ns: int) -> float:
        """Message-rate factor at ``ns``: 1 in regular hours, less in extended hours, 0 when closed."""
        phase = self.phase(ns)
        if phase is Phase.REGULAR:
            return 1.0
        return 0.0 if phase is Phase.CLOSED else EXTENDED_HOURS_ACTIVITY

    def opened(self, ns: int) -> bool:
        """Whether today's regular session has opened by ``ns`` (daily bars flow from then on)."""
        if self.calendar == "always":
            return True
        day = self._day_of(ns)
        return day.weekday and day.open <= ns < day.post_close

    def day_start(self, ns: int) -> int:
        """Midnight New York time of the day holding ``ns`` (how Alpaca stamps daily bars)."""
        return self._day_of(ns).start

    def next_day_start(self, ns: int) -> int:
        """Midnight New York time after ``ns`` (23, 24 or 25 hours after the day's start)."""
        return self._day_of(ns).end

    def previous_day_start(self, ns: int) -> int:
        """Midnight New York time of the trading day before the one holding ``ns``."""
        moment = datetime.fromtimestamp(self.day_start(ns) / NS_PER_SECOND, tz=UTC).astimezone(NEW_YORK)
        while True:
            moment = (moment - timedelta(hours=12)).replace(hour=0, minute=0, second=0, microsecond=0)
            if self.calendar == "always" or moment.weekday() < 5:
                return _ns(moment.replace(tzinfo=NEW_YORK))

    def open_at(self, ns: int) -> int:
        """The regular open of the day holding ``ns`` (the day's start on the ``always`` calendar)."""
        day = self._day_of(ns)
        return day.start if self.calendar == "always" else day.open

    def next_open(self, ns: int) -> int:
        """The first regular open at or after ``ns`` (``ns`` itself on the ``always`` calendar)."""
        if self.calendar == "always":
            return ns
        probe = ns
        while True:
            day = self._day_of(probe)
            if day.weekday and ns <= day.open:
                return day.open
            probe = day.end
