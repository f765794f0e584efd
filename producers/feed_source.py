"""FeedSource: the seam between the ingest and one kind of Alpaca market-data feed.

The ingest (producers/alpaca_ingest.py) owns everything feeds share: the lease, subscriptions,
staleness, gaps, publishing and repairing. A source owns what differs between feeds: which stream it
opens and where, which message letters (``T``) go to which raw topic, its trading-status codes, when
its data is expected at all, and the REST history that repairs its gaps. A new feed (e.g. alpaca-py's
``CryptoDataStream``, which trades 24/7) is one module implementing :class:`FeedSource`, named in
producers/feeds.py; the stock feed is :class:`producers.stock_source.StockFeedSource`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from producers.reconnect_policy import ReconnectPolicy
from producers.resilient_stream import StreamFailure, StreamObserver
from producers.staleness import MarketHours


@dataclass(frozen=True)
class MessageRouting:
    """What the ingest does with each Alpaca message letter (``T``) of this feed."""

    topics: Mapping[str, str]  # data letter -> the raw Kafka topic its messages are published to
    status: str | None = None  # the trading-status letter (halt detection), if the feed has one
    halts: frozenset[str] = frozenset()  # status codes (``sc``) that halt a symbol: its silence is no fault
    resumes: frozenset[str] = frozenset()  # status codes that end a halt
    data: frozenset[str] = field(init=False)  # every letter that carries a symbol's data (published or status)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", frozenset(self.topics) | ({self.status} if self.status else set()))


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
        """Connect and stream until cancelled, reconnecting after every failure; the cancel closes the socket."""

    async def force_reconnect(self, reason: str) -> None:
        """Drop the current session; :meth:`serve` reconnects by policy."""


class FeedHistory(Protocol):
    """A feed's REST history, read to repair a gap. Blocking: the reconciler calls it in a worker thread."""

    def missed(self, windows: Mapping[str, tuple[int, int]]) -> list[dict[str, Any]]:
        """Per symbol, what the stream carried strictly inside its (start, end) window (exchange ns), in the
        stream's shape: ``T``, ``S`` and ``t`` as a msgpack Timestamp (see :func:`producers.backfill.as_streamed`)."""
        ...


class FeedSource(Protocol):
    """One kind of feed: opens its stream, routes its message letters, knows its hours and its history."""

    name: str
    url: str  # where its stream connects (logs, status)
    routing: MessageRouting

    def market_hours(self) -> MarketHours:
        """When this feed's data is expected (a silent socket then is mute and reconnected)."""
        ...

    def open_stream(self, policy: ReconnectPolicy, observer: StreamObserver) -> FeedStream:
        """A new, not yet running stream that reports frames and failures to ``observer``."""
        ...

    def history(self) -> FeedHistory | None:
        """The REST history that repairs gaps, or None (gaps are then announced, not repaired)."""
        ...
