"""SubscriptionKeeper: open positions keep their symbols subscribed; empty symbols unsubscribe after a grace."""

from __future__ import annotations

import time
from collections.abc import Iterable

from schemas.events import SubscriptionRequest
from schemas.timestamps import format_ns, now_ns

SOURCE = "positions"


class SubscriptionKeeper:
    """Turns "symbol got its first position" / "symbol's last position closed" into control requests.

    An unsubscribe waits ``grace_s`` (a position re-opened meanwhile cancels it); the ingest keeps the
    symbol anyway while another source (the API, TICKWIRE_SYMBOLS) still wants it.
    """

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._pending: dict[str, float] = {}

    def update(self, opened: Iterable[str], emptied: Iterable[str], now: float | None = None
               ) -> list[SubscriptionRequest]:
        """Requests to send now for this batch's changes (subscribes are immediate)."""
        now = time.monotonic() if now is None else now
        requests = []
        for symbol in sorted(set(opened)):
            self._pending.pop(symbol, None)
            requests.append(_request(symbol, "subscribe"))
        for symbol in sorted(set(emptied) - set(opened)):
            self._pending[symbol] = now + self.grace_s
        return requests + self.due(now)

    def due(self, now: float | None = None) -> list[SubscriptionRequest]:
        """Unsubscribes whose grace period is over."""
        now = time.monotonic() if now is None else now
        ready = sorted(symbol for symbol, deadline in self._pending.items() if deadline <= now)
        for symbol in ready:
            del self._pending[symbol]
        return [_request(symbol, "unsubscribe") for symbol in ready]

    @property
    def pending(self) -> int:
        """Unsubscribes waiting out their grace period."""
        return len(self._pending)


def _request(symbol: str, action: str) -> SubscriptionRequest:
    return SubscriptionRequest(symbol=symbol, action=action, source=SOURCE,
                               requested_at=format_ns(now_ns()))
