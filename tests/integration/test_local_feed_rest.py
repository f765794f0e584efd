"""The feed's market-data REST API read by alpaca-py's real ``StockHistoricalDataClient`` (and aiohttp).

alpaca-py's REST client is synchronous (requests), so each call runs in a worker thread while the
server keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.enums import DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import (
    StockBarsRequest,
    StockLatestBarRequest,
    StockLatestQuoteRequest,
    StockLatestTradeRequest,
    StockQuotesRequest,
    StockSnapshotRequest,
    StockTradesRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from alpaca_feed.market import MINUTE_NS, EventRates
from schemas.timestamps import NS_PER_SECOND, format_ns_trimmed, now_ns, ns_to_datetime
from tests.helpers import eventually
from tests.integration.feed_support import DEADLINE, handshake, make_server, quote, raw_client, receive

pytestmark = pytest.mark.integration
__all__ = ["make_server"]  # a fixture: imported for pytest, not referenced by name

BASE_NS = (now_ns() // MINUTE_NS - 30) * MINUTE_NS  # half an hour ago, on a minute mark


def trade(symbol: str, t: int, p: float, i: int, s: int = 100) -> dict[str, Any]:
    return {"T": "t", "S": symbol, "i": i, "x": "V", "p": p, "s": s, "c": ["@"], "z": "C", "t": t}


def bar(symbol: str, t: int, c: float, v: int = 1000, kind: str = "b") -> dict[str, Any]:
    return {"T": kind, "S": symbol, "o": c - 0.5, "h": c + 1, "l": c - 1, "c": c, "v": v, "n": 10, "vw": c, "t": t}


def client(server: Any, **options: Any) -> StockHistoricalDataClient:
    return StockHistoricalDataClient("key", "secret", url_override=server.http_url(), **options)


async def call(function: Any, *args: Any) -> Any:
    """A blocking alpaca-py call off the loop, so the server on this loop can answer it."""
    return await asyncio.wait_for(asyncio.to_thread(function, *args), DEADLINE)


async def test_latest_quote_trade_and_bar_for_a_symbol_list(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    server.inject([
        quote("AAPL", BASE_NS + 1, 100.0), quote("AAPL", BASE_NS + 2_000_000_123, 101.0),
        quote("MSFT", BASE_NS + 5, 300.0),
        trade("AAPL", BASE_NS + 3, 100.01, 7), trade("AAPL", BASE_NS + 4, 100.02, 8),
        bar("AAPL", BASE_NS - MINUTE_NS, 99.0), bar("AAPL", BASE_NS, 100.5),
    ])  # fmt: skip
    rest = client(server)
    asked = StockLatestQuoteRequest(symbol_or_symbols=["AAPL", "MSFT", "NOPE"])
    quotes = await call(rest.get_stock_latest_quote, asked)
    assert set(quotes) == {"AAPL", "MSFT"}
    assert quotes["AAPL"].bid_price == 101.0 and quotes["AAPL"].ask_price == 101.02
    assert quotes["AAPL"].timestamp == ns_to_datetime(BASE_NS + 2_000_000_123)
    assert (quotes["AAPL"].bid_size, quotes["AAPL"].ask_size) == (2, 3)
    assert quotes["MSFT"].bid_price == 300.0
    asked_trade = StockLatestTradeRequest(symbol_or_symbols="AAPL", feed=DataFeed.IEX)
    trades = await call(rest.get_stock_latest_trade, asked_trade)
    assert trades["AAPL"].price == 100.02 and trades["AAPL"].id == 8 and trades["AAPL"].exchange == "V"
    bars = await call(rest.get_stock_latest_bar, StockLatestBarRequest(symbol_or_symbols=["AAPL", "MSFT"]))
    assert list(bars) == ["AAPL"] and bars["AAPL"].close == 100.5 and bars["AAPL"].vwap == 100.5

    raw = client(server, raw_data=True)
    exact = await call(raw.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols="AAPL"))
    assert exact["AAPL"]["t"] == format_ns_trimmed(BASE_NS + 2_000_000_123)  # all nine digits on the wire
    assert list(exact["AAPL"]) == ["t", "ax", "ap", "as", "bx", "bp", "bs", "c", "z"]


async def test_snapshots_have_no_wrapper_key_and_every_part(make_server) -> None:
    server = await make_server(rate_per_symbol=50.0, seed=4)
    async with raw_client(server.url("sip")) as ws:
        await handshake(ws, quotes=["NVDA"], trades=["NVDA"])

        async def traded() -> bool:
            return server.history.latest("trades", "NVDA") is not None

        await eventually(traded, DEADLINE, "a synthetic NVDA trade")
    today = server.model.hours.day_start(now_ns())
    server.inject([bar("AAPL", today - 86_400 * NS_PER_SECOND, 150.0, kind="d"), quote("AAPL", now_ns(), 151.0)])

    rest = client(server)
    snapshots = await call(rest.get_stock_snapshot, StockSnapshotRequest(symbol_or_symbols=["NVDA", "AAPL", "NOPE"]))
    assert set(snapshots) == {"NVDA", "AAPL"}
    nvda = snapshots["NVDA"]
    assert nvda.latest_quote.bid_price < nvda.latest_quote.ask_price
    assert nvda.latest_trade.price > 0 and nvda.daily_bar.volume >= nvda.latest_trade.size
    assert nvda.daily_bar.timestamp == ns_to_datetime(today)
    assert nvda.previous_daily_bar.close == server.model.previous_close("NVDA")
    assert nvda.previous_daily_bar.timestamp == ns_to_datetime(server.model.hours.previous_day_start(now_ns()))
    aapl = snapshots["AAPL"]
    assert aapl.latest_quote.bid_price == 151.0 and aapl.latest_trade is None and aapl.minute_bar is None
    assert aapl.previous_daily_bar.close == 150.0  # an injected daily bar of yesterday wins over the model

    raw = client(server, raw_data=True)
    body = await call(raw.get_stock_snapshot, StockSnapshotRequest(symbol_or_symbols="NVDA"))
    assert list(body) == ["NVDA"]
    assert list(body["NVDA"]) == ["latestTrade", "latestQuote", "minuteBar", "dailyBar", "prevDailyBar"]


async def test_historical_trades_and_quotes_over_a_range_page_through_next_page_token(make_server) -> None:
    server = await make_server(rate_per_symbol=0, history_limit=12_000)
    server.inject([trade("AMD", BASE_NS + i * 1000, 100 + (i % 50) / 100, i) for i in range(11_000)])
    server.inject([quote("AMD", BASE_NS + i * 1000, 100.0) for i in range(300)])
    rest = client(server)
    request = StockTradesRequest(symbol_or_symbols="AMD", start=ns_to_datetime(BASE_NS))
    trades = await call(rest.get_stock_trades, request)  # two pages: 10,000 (alpaca-py's page size) + 1,000
    got = trades["AMD"]
    assert [t.id for t in got] == list(range(11_000))
    window = StockTradesRequest(
        symbol_or_symbols="AMD",
        start=ns_to_datetime(BASE_NS + 1_000_000),  # trades 1000..1999 (µs boundaries, inclusive)
        end=ns_to_datetime(BASE_NS + 1_999_000),
    )
    assert [t.id for t in (await call(rest.get_stock_trades, window))["AMD"]] == list(range(1000, 2000))
    limited = StockTradesRequest(symbol_or_symbols="AMD", start=ns_to_datetime(BASE_NS), limit=25)
    assert len((await call(rest.get_stock_trades, limited))["AMD"]) == 25
    asked = StockQuotesRequest(symbol_or_symbols="AMD", start=ns_to_datetime(BASE_NS))
    quotes = await call(rest.get_stock_quotes, asked)
    assert len(quotes["AMD"]) == 300


async def test_historical_bars_by_minute_hour_and_day(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    minutes = [bar("TSLA", BASE_NS + i * MINUTE_NS, 200.0 + i, v=100 * (i + 1)) for i in range(12)]
    amended = {**minutes[3], "T": "u", "c": 999.0}
    server.inject([*minutes, amended])
    rest = client(server)
    start = ns_to_datetime(BASE_NS)
    one = await call(rest.get_stock_bars, StockBarsRequest(symbol_or_symbols="TSLA", timeframe=TimeFrame.Minute,
                                                           start=start))
    assert [b.close for b in one["TSLA"]] == [200.0 + i if i != 3 else 999.0 for i in range(12)]
    five_minutes = TimeFrame(5, TimeFrameUnit.Minute)
    five = await call(rest.get_stock_bars, StockBarsRequest(symbol_or_symbols="TSLA", timeframe=five_minutes,
                                                            start=start))
    assert sum(b.volume for b in five["TSLA"]) == sum(m["v"] for m in minutes)
    assert all(b.timestamp.minute % 5 == 0 for b in five["TSLA"])
    assert five["TSLA"][-1].close == 211.0
    today = server.model.hours.day_start(now_ns())
    server.inject([bar("TSLA", today - 86_400 * NS_PER_SECOND, 190.0, kind="d"), bar("TSLA", today, 205.0, kind="d")])
    since = ns_to_datetime(today) - timedelta(days=3)
    days = await call(rest.get_stock_bars, StockBarsRequest(symbol_or_symbols="TSLA", timeframe=TimeFrame.Day,
                                                            start=since))
    assert [b.close for b in days["TSLA"]] == [190.0, 205.0]


async def test_errors_are_code_and_message_json(make_server) -> None:
    server = await make_server(rate_per_symbol=0, key="right", secret="secret")
    wrong = StockHistoricalDataClient("wrong", "secret", url_override=server.http_url())
    with pytest.raises(APIError) as caught:
        await call(wrong.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols="AAPL"))
    assert caught.value.status_code == 401 and caught.value.code == 40110000
    right = StockHistoricalDataClient("right", "secret", url_override=server.http_url())
    week = StockBarsRequest(symbol_or_symbols="AAPL", timeframe=TimeFrame.Week, start=ns_to_datetime(BASE_NS))
    with pytest.raises(APIError) as caught:
        await call(right.get_stock_bars, week)
    assert caught.value.status_code == 422 and "timeframe" in caught.value.message

    headers = {"APCA-API-KEY-ID": "right", "APCA-API-SECRET-KEY": "secret"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for path, status in [("/v2/stocks/quotes/latest", 400), ("/v2/stocks/quotes/latest?symbols=bad%20one", 400),
                             ("/v2/stocks/trades?symbols=AAPL&limit=0", 422),
                             ("/v2/stocks/trades?symbols=AAPL&start=yesterday", 422),
                             ("/v2/stocks/trades?symbols=AAPL&page_token=garbage", 422),
                             ("/v2/stocks/quotes/latest?symbols=AAPL&feed=nasdaq", 422),
                             ("/v2/stocks/nothing", 404)]:  # fmt: skip
            async with http.get(server.http_url() + path) as response:
                assert response.status == status, path
                body = await response.json()
                assert set(body) == {"code", "message"} and isinstance(body["code"], int), body


async def test_paging_with_small_limits_descending_and_several_symbols(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    server.inject([quote(symbol, BASE_NS + i // 2, 10.0 + i) for symbol in ("BBB", "AAA") for i in range(7)])
    seen: list[tuple[str, str, float]] = []
    token = None
    pages = 0
    async with aiohttp.ClientSession() as http:
        while True:
            params = {"symbols": "BBB,AAA", "start": format_ns_trimmed(BASE_NS), "limit": "3", "sort": "desc"}
            if token:
                params["page_token"] = token
            async with http.get(server.http_url() + "/v2/stocks/quotes", params=params) as response:
                body = await response.json()
            pages += 1
            for symbol, quotes in body["quotes"].items():
                seen.extend((symbol, q["t"], q["bp"]) for q in quotes)
            token = body["next_page_token"]
            if token is None:
                break
    assert pages == 5
    expected = [(s, format_ns_trimmed(BASE_NS + i // 2), 10.0 + i) for s in ("AAA", "BBB") for i in reversed(range(7))]
    assert seen == expected  # symbol order, newest first, equal timestamps neither lost nor repeated


async def test_rest_reconciles_what_a_muted_stream_did_not_deliver(make_server) -> None:
    server = await make_server(rate_per_symbol=100.0, seed=2, events=EventRates.none())  # consecutive trade ids
    streamed: list[int] = []

    async def read_trades_until(done: Any) -> None:
        while not done():
            streamed.extend(m["i"] for m in await receive(ws, aiohttp.WSMsgType.TEXT) if m["T"] == "t")

    def latest_id() -> int:
        row = server.history.latest("trades", "QQQ")
        return 0 if row is None else row[5]  # TRADE_FIELDS: t x p s c i z

    async with raw_client(server.url("sip")) as ws:
        await handshake(ws, trades=["QQQ"])
        await read_trades_until(lambda: streamed)
        server.faults.mute()
        muted_from = latest_id()

        async def gap() -> bool:
            return latest_id() >= muted_from + 5

        await eventually(gap, DEADLINE, "trades while muted")
        server.faults.unmute()
        muted_to = latest_id()
        await read_trades_until(lambda: streamed[-1] > muted_to)  # data after the gap flows again

    rest = client(server, raw_data=True)
    request = StockTradesRequest(symbol_or_symbols="QQQ", start=ns_to_datetime(now_ns() - 600 * NS_PER_SECOND))
    recorded = [t["i"] for t in (await call(rest.get_stock_trades, request))["QQQ"]]
    assert recorded == list(range(1, recorded[-1] + 1))  # REST has every trade, in order
    missed = sorted(set(recorded) - set(streamed))
    assert len([i for i in missed if i < streamed[-1]]) >= 5  # the stream lost them, REST did not


async def test_simulated_symbols_have_rest_data_without_any_subscriber(make_server) -> None:
    server = await make_server(rate_per_symbol=50.0, simulate=["XYZ"])
    rest = client(server)

    async def quoted() -> Any:
        found = await call(rest.get_stock_latest_quote, StockLatestQuoteRequest(symbol_or_symbols="XYZ"))
        return found.get("XYZ")

    latest = await eventually(quoted, DEADLINE, "a simulated XYZ quote over REST")
    assert latest.bid_price < latest.ask_price and server.sessions == ()
