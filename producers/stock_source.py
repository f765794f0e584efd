"""StockFeedSource: Alpaca's stock market data (SIP, IEX, delayed SIP or the test stream) as a FeedSource.

Everything the ingest knows about stocks is here: the stream (alpaca-py's ``StockDataStream``) and its
channels, which message letters go to which raw topic, the CTA/UTP trading-status codes, the US equity
sessions, the 409 advice, and the REST history (``StockHistoricalDataClient``) that repairs gaps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest, StockTradesRequest
from alpaca.data.timeframe import TimeFrame

from producers.alpaca_adapter import with_request_timeout
from producers.backfill import as_streamed
from producers.feed_source import FeedStream, MessageRouting
from producers.gaps import exchange_ns
from producers.reconnect_policy import ReconnectPolicy
from producers.resilient_stream import ADVICE, WEBSOCKET_PARAMS, ResilientDataStream, StreamObserver
from producers.settings import IngestSettings
from producers.staleness import MarketHours, Session
from schemas.timestamps import NS_PER_SECOND, ns_to_datetime
from schemas.topics import BARS_RAW, DAILY_BARS_RAW, QUOTES_RAW, TRADES_RAW

STREAM_CHANNELS = ("trades", "quotes", "bars", "dailyBars", "statuses")
# Alpaca's test stream offers only these; naming another channel there gets the whole subscribe refused (410).
TEST_STREAM_CHANNELS = ("trades", "quotes", "bars")
# Trading status codes (``sc`` of ``T: "s"`` messages): CTA 2 = halt; UTP H = halt, P = volatility pause.
HALT_CODES = frozenset({"2", "H", "P"})
# CTA 3 = resume; UTP T = trading resumption, Q = quotation resumption (quotes flow again).
RESUME_CODES = frozenset({"3", "T", "Q"})
# Trades, quotes, bars and daily bars are published; "s" (trading status) feeds halt detection.
STOCK_ROUTING = MessageRouting(
    topics={"t": TRADES_RAW.name, "q": QUOTES_RAW.name, "b": BARS_RAW.name, "d": DAILY_BARS_RAW.name},
    status="s", halts=HALT_CODES, resumes=RESUME_CODES)
STOCK_ADVICE = {**ADVICE, 409: "this feed is not in the account's plan: use ALPACA_FEED=iex or upgrade the data plan"}

NEW_YORK = ZoneInfo("America/New_York")
# US equity sessions in New York time; IEX quotes flow in the extended session (04:00-20:00).
US_EQUITY_SESSIONS = {
    "extended": Session(NEW_YORK, time(4, 0), time(20, 0)),
    "regular": Session(NEW_YORK, time(9, 30), time(16, 0)),
}


class StockMarketHours(MarketHours):
    """``always``, or the US ``extended``/``regular`` session on weekdays."""

    def __init__(self, mode: str) -> None:
        super().__init__(mode, US_EQUITY_SESSIONS)


class StockFeedSource:
    """Opens :class:`ResilientStockDataStream` on ``settings.stream_url`` with the channels that feed offers."""

    name = "stocks"
    routing = STOCK_ROUTING

    def __init__(self, settings: IngestSettings, credentials: tuple[str, str]) -> None:
        self.settings = settings
        self.credentials = credentials
        self.url = settings.stream_url
        is_test = settings.alpaca_feed == "test" or self.url.rstrip("/").endswith("/test")
        self.channels = TEST_STREAM_CHANNELS if is_test else STREAM_CHANNELS

    def market_hours(self) -> MarketHours:
        """US equity sessions as configured (``always`` for a local or test feed)."""
        return StockMarketHours(self.settings.effective_market_hours)

    def open_stream(self, policy: ReconnectPolicy, observer: StreamObserver) -> FeedStream:
        """A stock stream subscribing this feed's channels for every registered symbol."""
        key, secret = self.credentials
        return ResilientStockDataStream(key, secret, url=self.url, policy=policy, observer=observer,
                                        channels=self.channels)

    def history(self) -> StockHistory | None:
        """Alpaca's stock REST API, when there is one to ask (a local feed's URL, or credentials)."""
        if not (self.settings.alpaca_data_url or self.settings.has_alpaca_credentials):
            return None
        return StockHistory(*self.credentials, self.settings.alpaca_data_url, self.settings.alpaca_feed)


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


MINUTE_NS = 60 * NS_PER_SECOND
REST_FEEDS = {"iex": DataFeed.IEX, "sip": DataFeed.SIP, "delayed_sip": DataFeed.DELAYED_SIP}


class StockHistory:
    """What the stock stream missed, from alpaca-py's REST client in raw mode (timestamps stay nanosecond
    strings): per symbol the trades strictly inside its window, the minute bars that closed inside it, and
    the latest quote if it is newer than the window's start."""

    def __init__(self, api_key: str, secret_key: str, url: str | None, feed: str) -> None:
        self.client = with_request_timeout(
            StockHistoricalDataClient(api_key, secret_key, raw_data=True, url_override=url))
        self.feed = REST_FEEDS.get(feed)  # the test stream has no REST feed: let Alpaca pick

    def missed(self, windows: Mapping[str, tuple[int, int]]) -> list[dict[str, Any]]:
        """The messages strictly inside each symbol's (start, end) window, in the stream's shape."""
        symbols = list(windows)
        start = min(lo for lo, _ in windows.values())
        end = max(hi for _, hi in windows.values())
        out: list[dict[str, Any]] = []
        trades = self.client.get_stock_trades(StockTradesRequest(
            symbol_or_symbols=symbols, start=_dt(start), end=_dt(end) + timedelta(microseconds=1), feed=self.feed))
        for symbol, items in _by_symbol(trades):
            lo, hi = windows[symbol]
            out += [as_streamed("t", symbol, item) for item in items if lo < (_ns(item) or lo) < hi]
        bars = self.client.get_stock_bars(StockBarsRequest(
            symbol_or_symbols=symbols, timeframe=TimeFrame.Minute, start=_dt(start - MINUTE_NS), end=_dt(end),
            feed=self.feed))
        for symbol, items in _by_symbol(bars):
            lo, hi = windows[symbol]
            # A minute bar is streamed when its minute ends: missed if that moment fell inside the gap.
            out += [as_streamed("b", symbol, item) for item in items if lo < (_ns(item) or hi) + MINUTE_NS <= hi]
        quotes = self.client.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols=symbols,
                                                                            feed=self.feed))
        for symbol, item in (quotes or {}).items():
            if symbol in windows and isinstance(item, dict) and (_ns(item) or 0) > windows[symbol][0]:
                out.append(as_streamed("q", symbol, item))
        return out


def _dt(ns: int) -> datetime:
    return ns_to_datetime(ns)


def _ns(item: dict[str, Any]) -> int | None:
    return exchange_ns(item.get("t"))


def _by_symbol(result: Any) -> Iterable[tuple[str, list[dict[str, Any]]]]:
    if not isinstance(result, dict):
        return []
    return [(s, items) for s, items in result.items() if isinstance(items, list)]
