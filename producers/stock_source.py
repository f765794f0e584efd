"""StockFeedSource: Alpaca's stock market-data stream (SIP, IEX, or the test stream) as a FeedSource."""

from __future__ import annotations

from collections.abc import Iterable

from alpaca.data.live import StockDataStream

from producers.feed_source import FeedStream, MessageRouting
from producers.reconnect_policy import ReconnectPolicy
from producers.resilient_stream import ADVICE, WEBSOCKET_PARAMS, ResilientDataStream, StreamObserver
from producers.settings import IngestSettings
from producers.staleness import MarketHours

STREAM_CHANNELS = ("trades", "quotes", "bars", "dailyBars", "statuses")
# Alpaca's test stream offers only these; naming another channel there gets the whole subscribe refused (410).
TEST_STREAM_CHANNELS = ("trades", "quotes", "bars")
# Stock messages: trades, quotes, bars and daily bars are published; "s" (trading status) feeds halt detection.
STOCK_ROUTING = MessageRouting(published=frozenset({"t", "q", "b", "d"}), status="s")
STOCK_ADVICE = {**ADVICE, 409: "this feed is not in the account's plan: use ALPACA_FEED=iex or upgrade the data plan"}


class StockFeedSource:
    """Opens :class:`ResilientStockDataStream` on ``settings.stream_url`` with the channels that feed offers."""

    name = "stocks"
    routing = STOCK_ROUTING

    def __init__(self, settings: IngestSettings, credentials: tuple[str, str]) -> None:
        self.settings = settings
        self.credentials = credentials
        is_test = settings.alpaca_feed == "test" or settings.stream_url.rstrip("/").endswith("/test")
        self.channels = TEST_STREAM_CHANNELS if is_test else STREAM_CHANNELS

    def market_hours(self) -> MarketHours:
        """US equity sessions as configured (``always`` for a local or test feed)."""
        return MarketHours(self.settings.effective_market_hours)

    def open_stream(self, policy: ReconnectPolicy, observer: StreamObserver) -> FeedStream:
        """A stock stream subscribing this feed's channels for every registered symbol."""
        key, secret = self.credentials
        return ResilientStockDataStream(key, secret, url=self.settings.stream_url, policy=policy,
                                        observer=observer, channels=self.channels)


class ResilientStockDataStream(ResilientDataStream):
    """alpaca-py's ``StockDataStream`` (raw mode) under tickwire's reconnects: the stock feed's FeedStream."""

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        url: str,
        policy: ReconnectPolicy,
        observer: StreamObserver,
        channels: Iterable[str] = STREAM_CHANNELS,
    ) -> None:
        stream = StockDataStream(api_key, secret_key, raw_data=True, url_override=url,
                                 websocket_params=WEBSOCKET_PARAMS)
        super().__init__(stream, url=url, policy=policy, observer=observer, channels=channels, advice=STOCK_ADVICE)
