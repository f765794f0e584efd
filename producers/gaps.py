"""GapTracker: opens a gap when the ingest loses data and closes it at each symbol's first message after.

Alpaca has no replay, so every reconnect, stall, queue overflow or takeover is a window of possibly
missing data. The tracker is pure bookkeeping (callers pass the clocks); the GapReconciler turns its
finished incidents into ``feed.gaps`` events and REST backfill.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import msgpack

from schemas.events import FeedGap, GapReason
from schemas.timestamps import NS_PER_SECOND, datetime_to_ns, format_ns, parse_ns


def exchange_ns(stamp: object) -> int | None:
    """An Alpaca ``t`` in any form the ingest sees (msgpack Timestamp, ns, datetime, RFC 3339) -> ns."""
    if isinstance(stamp, msgpack.Timestamp):
        return stamp.to_unix_nano()
    if isinstance(stamp, int) and not isinstance(stamp, bool):
        return stamp
    if isinstance(stamp, datetime):
        return datetime_to_ns(stamp)
    if isinstance(stamp, str):
        try:
            return parse_ns(stamp)
        except ValueError:
            return None
    return None


@dataclass
class GapIncident:
    """One loss of data (a drop, a stall, an overflow, a takeover) over one or more symbols."""

    reason: GapReason
    started_ns: int  # receive time from which data may be missing
    last_before: dict[str, int | None]  # symbol -> exchange ns of its last message before
    detail: str = ""
    gap_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    resumed_ns: int | None = None  # when the stream carried the symbols again (None: not yet)
    first_after: dict[str, int] = field(default_factory=dict)  # symbol -> exchange ns
    ended_ns: dict[str, int] = field(default_factory=dict)  # symbol -> receive time of that message

    @property
    def symbols(self) -> list[str]:
        """The symbols this incident covers."""
        return list(self.last_before)

    def window_ns(self, symbol: str, now_ns: int) -> tuple[int, int]:
        """(start, end) of the missing window in exchange/wall ns: strictly between these two times."""
        start = self.last_before.get(symbol) or self.started_ns
        # Without a first message the symbol was silent since the stream came back: nothing missed after that.
        end = self.first_after.get(symbol) or self.ended_ns.get(symbol) or self.resumed_ns or now_ns
        return start, end

    def events(self) -> list[FeedGap]:
        """One ``feed.gaps`` value per symbol."""
        symbols = self.symbols
        return [
            FeedGap(
                gap_id=self.gap_id,
                symbol=symbol,
                symbols=symbols,
                reason=self.reason,
                last_before=_fmt(self.last_before.get(symbol)),
                first_after=_fmt(self.first_after.get(symbol)),
                started_at=format_ns(self.started_ns),
                ended_at=format_ns(self.ended_ns.get(symbol) or self.resumed_ns or self.started_ns),
                detail=self.detail,
            )
            for symbol in symbols
        ]


def _fmt(ns: int | None) -> str | None:
    return None if ns is None else format_ns(ns)


class GapTracker:
    """Bookkeeping of open gap incidents.

    A socket incident (reconnect, stall, takeover) opens when the stream is lost, starts waiting when it
    is subscribed again (:meth:`resumed`) and completes when every symbol has had its first message, or
    ``settle_s`` after resuming (a quiet symbol then has ``first_after = None``). An overflow incident
    opens per symbol on the first message the full queue refused and closes with the next one it took.
    """

    def __init__(self, settle_s: float) -> None:
        self.settle_ns = int(settle_s * NS_PER_SECOND)
        self._socket: GapIncident | None = None  # the open socket incident, at most one
        self._overflow: dict[str, GapIncident] = {}
        self._waiting: dict[str, list[GapIncident]] = {}  # symbol -> incidents awaiting its first message
        self._done: list[GapIncident] = []
        self.opened = 0

    @property
    def waiting(self) -> bool:
        """True while some symbol's first message after a gap is awaited (checked on the hot path)."""
        return bool(self._waiting)

    def lost(
        self,
        reason: GapReason,
        symbols: Iterable[str],
        last_exchange: Mapping[str, object],
        started_ns: int,
        detail: str = "",
    ) -> GapIncident | None:
        """The stream lost data for ``symbols`` from ``started_ns``. A loss while one is still open
        (repeated failed reconnects) extends it; returns the newly opened incident, if any."""
        current = self._socket
        if current is not None and current.resumed_ns is None:
            return None
        if current is not None:
            self._finish(current)  # dropped again before every symbol came back: close what we have
        symbols = list(symbols)
        if not symbols:
            return None
        incident = GapIncident(reason, started_ns, {s: exchange_ns(last_exchange.get(s)) for s in symbols}, detail)
        self._socket = incident
        self.opened += 1
        return incident

    def resumed(self, now_ns: int) -> None:
        """The stream is subscribed again: wait for each symbol's first message."""
        incident = self._socket
        if incident is None or incident.resumed_ns is not None:
            return
        incident.resumed_ns = now_ns
        for symbol in incident.symbols:
            self._waiting.setdefault(symbol, []).append(incident)

    def observe(self, symbol: str, stamp: object, received_ns: int) -> None:
        """A message of ``symbol`` was received and queued (call only while :attr:`waiting`)."""
        incidents = self._waiting.pop(symbol, None)
        if not incidents:
            return
        first = exchange_ns(stamp)
        for incident in incidents:
            if first is not None:
                incident.first_after[symbol] = first
            incident.ended_ns[symbol] = received_ns
            if incident.reason is GapReason.OVERFLOW:
                self._overflow.pop(symbol, None)
                self._finish(incident)

    def dropped(self, symbol: str, last_queued: object, received_ns: int) -> None:
        """The full queue refused a message of ``symbol``; ``last_queued`` is the ``t`` of the last it took."""
        if symbol in self._overflow:
            return
        incident = GapIncident(GapReason.OVERFLOW, received_ns, {symbol: exchange_ns(last_queued)},
                               "ingest queue full: Kafka slow or unreachable")
        incident.resumed_ns = received_ns
        self._overflow[symbol] = incident
        self._waiting.setdefault(symbol, []).append(incident)
        self.opened += 1

    def forget(self, symbol: str) -> None:
        """``symbol`` was unsubscribed: stop waiting for it."""
        for incident in self._waiting.pop(symbol, []):
            incident.ended_ns.setdefault(symbol, incident.resumed_ns or incident.started_ns)
        self._overflow.pop(symbol, None)

    def take_complete(self, now_ns: int) -> list[GapIncident]:
        """Incidents that are finished at ``now_ns`` (each returned once)."""
        incident = self._socket
        if incident is not None and incident.resumed_ns is not None:
            pending = [s for s in incident.symbols if s not in incident.ended_ns]
            if not pending or now_ns - incident.resumed_ns >= self.settle_ns:
                self._finish(incident)
        done, self._done = self._done, []
        return done

    def _finish(self, incident: GapIncident) -> None:
        if incident is self._socket:
            self._socket = None
        for symbol in incident.symbols:
            waiting = self._waiting.get(symbol)
            if waiting and incident in waiting:
                waiting.remove(incident)
                if not waiting:
                    del self._waiting[symbol]
        self._done.append(incident)
