"""FeedSource: the seam between the ingest and one kind of Alpaca market-data feed.

The ingest (producers/alpaca_ingest.py) owns everything a feed shares: the lease, subscriptions,
staleness, gaps and publishing. A source owns what differs between feeds: which stream to open, which
message letters (``T``) carry data to publish or trading statuses, and when data is expected at all.
A new feed (e.g. alpaca-py's ``CryptoDataStream``, which trades 24/7) is one file implementing
:class:`FeedSource`; the stock feed is :class:`producers.stock_source.StockFeedSource`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from producers.reconnect_policy import ReconnectPolicy
from producers.resilient_stream import StreamFailure, StreamObserver
from producers.staleness import MarketHours


@dataclass(frozen=True)
class MessageRouting:
    """What the stream router does with each Alpaca message letter (``T``) of this feed."""

    published: frozenset[str]  # data letters queued for the raw Kafka topics
    status: str | None = None  # the trading-status letter (halt detection), if the feed has one

    @property
    def data(self) -> frozenset[str]:
        """Every letter that carries a symbol's data (published or status)."""
        return self.published | ({self.status} if self.status else set())


class FeedStream(Protocol):
    """One feed connection as the ingest drives it: reconnects by policy, reports to its observer."""

    connected: bool
    sessions: int  # successful connections so far
    next_attempt_in_s: float | None
    last_failure: StreamFailure | None

    def register_symbols(self, symbols: Iterable[str]) -> None:
        """Set the symbols to subscribe before the stream runs."""

    async def change_symbols(self, added: Iterable[str], removed: Iterable[str]) -> None:
        """(Un)subscribe now if connected, else at the next connect."""

    async def serve(self) -> None:
        """Connect and stream until :meth:`shutdown`, reconnecting after every failure."""

    async def shutdown(self) -> None:
        """Stop: close the socket now."""

    async def force_reconnect(self, reason: str) -> None:
        """Drop the current session; :meth:`serve` reconnects by policy."""


class FeedSource(Protocol):
    """One kind of feed: opens its stream, names its message letters and its trading hours."""

    name: str
    routing: MessageRouting

    def market_hours(self) -> MarketHours:
        """When this feed's data is expected (a silent socket then is mute and reconnected)."""
        ...

    def open_stream(self, policy: ReconnectPolicy, observer: StreamObserver) -> FeedStream:
        """A new, not yet running stream that reports frames and failures to ``observer``."""
        ...
