"""The FeedSource seam: the ingest takes its stream, message letters and hours from the source."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from pydantic import ValidationError

from producers.alpaca_ingest import IngestService
from producers.feed_source import FeedSource, FeedStream, MessageRouting
from producers.gaps import GapTracker
from producers.kafka_publisher import IngestCounters
from producers.reconnect_policy import ReconnectPolicy
from producers.resilient_stream import StreamFailure, StreamObserver
from producers.settings import IngestSettings
from producers.staleness import MarketHours, StalenessMonitor
from producers.stock_source import (
    STOCK_ROUTING,
    STREAM_CHANNELS,
    TEST_STREAM_CHANNELS,
    ResilientStockDataStream,
    StockFeedSource,
)
from producers.stream_router import StreamRouter
from tickwire.cli_errors import validation_lines

# A made-up feed whose data letter is "x" and that has no status messages.
X_ROUTING = MessageRouting(topics={"x": "x.raw"})


class HandOver:
    """The publisher's hand-over side (room, put, refuse, counters), no Kafka."""

    def __init__(self) -> None:
        self.counters = IngestCounters()
        self.queued: list[dict[str, Any]] = []

    def room(self) -> int:
        return 100

    def put(self, messages: list[dict[str, Any]], received_ns: int) -> None:
        self.queued += messages

    def refuse(self) -> None:
        raise AssertionError("never full here")


class IdleStream:
    """A FeedStream that never connects (the ingest only builds it in these tests)."""

    connected = False
    sessions = 0
    next_attempt_in_s: float | None = None
    last_failure: StreamFailure | None = None

    def __init__(self, observer: StreamObserver) -> None:
        self.observer = observer
        self.symbols: list[str] = []

    def register_symbols(self, symbols: Iterable[str]) -> None:
        self.symbols += symbols

    async def change_symbols(self, added: Iterable[str], removed: Iterable[str]) -> None:
        return None

    async def serve(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def force_reconnect(self, reason: str) -> None:
        return None


class AroundTheClockSource:
    """A second feed in one class, as crypto would be: its own letters, open 24/7."""

    name = "x-feed"
    url = "ws://x.example/feed"
    routing = X_ROUTING

    def __init__(self) -> None:
        self.opened: list[IdleStream] = []

    def market_hours(self) -> MarketHours:
        return MarketHours("always")

    def history(self) -> None:
        return None

    def open_stream(self, policy: ReconnectPolicy, observer: StreamObserver) -> FeedStream:
        stream = IdleStream(observer)
        self.opened.append(stream)
        return stream


def _router(routing: MessageRouting) -> tuple[StreamRouter, HandOver, StalenessMonitor]:
    hand_over = HandOver()
    staleness = StalenessMonitor(60, 30, MarketHours("always"), routing.halts, routing.resumes)
    router = StreamRouter(hand_over, GapTracker(5.0), staleness, {"AAPL"}, routing=routing)  # type: ignore[arg-type]
    return router, hand_over, staleness


def test_the_router_publishes_the_letters_its_source_names() -> None:
    router, hand_over, _ = _router(X_ROUTING)
    router.on_frame([{"T": "x", "S": "AAPL", "t": 1}, {"T": "t", "S": "AAPL", "t": 2}], 10)
    assert [m["T"] for m in hand_over.queued] == ["x"]  # "t" is a stock letter, unknown to this feed


def test_the_stock_source_routes_trades_quotes_bars_and_takes_statuses_for_halts() -> None:
    router, hand_over, staleness = _router(STOCK_ROUTING)
    router.on_frame([{"T": k, "S": "AAPL", "t": 1} for k in "tqbd"] + [{"T": "s", "S": "AAPL", "sc": "H"}], 10)
    assert [m["T"] for m in hand_over.queued] == ["t", "q", "b", "d"]
    assert staleness.halted == {"AAPL"}


async def test_the_ingest_builds_its_router_hours_and_stream_from_the_source() -> None:
    source = AroundTheClockSource()
    settings = IngestSettings(_env_file=None, kafka_bootstrap_servers="127.0.0.1:1", symbols=["AAPL"])
    service = IngestService(settings, source=source)
    try:
        source_as_protocol: FeedSource = source  # the class satisfies the protocol
        assert service.router.routing is source_as_protocol.routing
        assert service.staleness.market_hours.mode == "always"
        stream = service.source.open_stream(service.policy, service)
        assert source.opened == [stream]
    finally:  # never started: closing releases the Kafka clients it built
        await service.reader.stop()
        await service.publisher.close(0.1)


def test_the_stock_source_opens_a_stock_stream_with_the_channels_its_feed_offers() -> None:
    policy = ReconnectPolicy(0.1, 1.0, 0.0, 3)
    live = StockFeedSource(IngestSettings(_env_file=None, alpaca_feed="iex"), ("k", "s"))
    test = StockFeedSource(IngestSettings(_env_file=None, alpaca_feed="test"), ("k", "s"))
    assert (live.channels, test.channels) == (STREAM_CHANNELS, TEST_STREAM_CHANNELS)
    stream = live.open_stream(policy, IngestService.__new__(IngestService))
    assert isinstance(stream, ResilientStockDataStream) and stream.channels == STREAM_CHANNELS


async def test_the_ingest_streams_the_feed_its_setting_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKWIRE_FEED_SOURCE", "Stocks")
    settings = IngestSettings(_env_file=None, kafka_bootstrap_servers="127.0.0.1:1", symbols=["AAPL"])
    service = IngestService(settings)
    try:
        assert settings.feed_source == "stocks"
        assert isinstance(service.source, StockFeedSource) and service.router.routing is STOCK_ROUTING
    finally:
        await service.reader.stop()
        await service.publisher.close(0.1)


def test_an_unknown_feed_is_one_line_naming_the_variable_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKWIRE_FEED_SOURCE", "crypto")
    with pytest.raises(ValidationError) as error:
        IngestSettings(_env_file=None)
    assert validation_lines(error.value) == [
        "TICKWIRE_FEED_SOURCE: 'crypto' is not a feed the ingest knows (choices: stocks)"]
