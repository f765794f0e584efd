"""Conformance of the local feed with Alpaca's stock stream (reference §5), driven by real clients.

Every message type the synthetic market generates is sent through the server to the real alpaca-py
``StockDataStream`` (parsed and raw) and to a raw JSON client; symbol limits, internal errors and
resubscription after reconnects are checked the way alpaca-py meets them.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import aiohttp
import msgpack
import pytest
from alpaca.data.enums import Exchange
from alpaca.data.live import StockDataStream
from alpaca.data.models import Bar, Quote, Trade, TradeCancel, TradeCorrection, TradingStatus

from alpaca_feed.market import EventRates, MarketModel
from schemas.timestamps import format_ns_trimmed, now_ns, ns_to_datetime
from tests.helpers import eventually
from tests.integration.feed_support import (
    DEADLINE,
    Collector,
    handshake,
    make_server,
    raw_client,
    receive,
    running,
    send_json,
)

pytestmark = pytest.mark.integration


def as_received(message: dict[str, Any]) -> dict[str, Any]:
    """The model's message as a client decodes it (its shared condition tuples arrive as arrays)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in message.items()}
__all__ = ["make_server"]  # a fixture: imported for pytest, not referenced by name

ALL_TYPES = ("q", "t", "b", "d", "u", "s", "l", "c", "x")
BUSY = EventRates(late_trade=1.0, correction=0.1, cancel=0.1, pause=1.0, pause_seconds=2.0)


def generated(symbol: str, minutes: float = 4) -> list[dict[str, Any]]:
    """A few simulated minutes of ``symbol`` from the synthetic market (every type), oldest first."""
    model = MarketModel(21, events=BUSY)
    start = (now_ns() // 60_000_000_000 - 10) * 60_000_000_000
    events: list[dict[str, Any]] = []
    for step in range(int(minutes * 600)):
        at = start + step * 100_000_000
        events.extend(model.timed_events(at))
        events.extend(model.next_events(symbol, at))
    assert set(ALL_TYPES) <= {e["T"] for e in events}
    return [as_received(e) for e in events]


def subscribe_everything(stream: StockDataStream, handler: Any, symbol: str) -> None:
    stream.subscribe_trades(handler, symbol)
    stream.subscribe_quotes(handler, symbol)
    stream.subscribe_bars(handler, symbol)
    stream.subscribe_updated_bars(handler, symbol)
    stream.subscribe_daily_bars(handler, symbol)
    stream.subscribe_trading_statuses(handler, symbol)
    stream.register_trade_corrections(handler)
    stream.register_trade_cancels(handler)
    stream._subscribe(handler, (symbol,), stream._handlers["lulds"])  # alpaca-py has no public lulds call


async def test_every_generated_message_type_parses_into_alpaca_py_models(make_server, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="alpaca.data.live.websocket")
    server = await make_server(rate_per_symbol=0)
    messages = generated("AAPL")
    stream = StockDataStream("key", "secret", url_override=server.url())
    got = Collector()
    subscribe_everything(stream, got.handle, "AAPL")
    async with running(stream, kick=server):
        await server.wait_for_subscription("lulds", ["AAPL"])
        assert server.inject(messages) == 1
        await got.wait_for(lambda items: len(items) >= len(messages))

    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text  # nothing failed to parse
    expected = {"q": Quote, "t": Trade, "b": Bar, "d": Bar, "u": Bar, "s": TradingStatus, "l": dict,
                "c": TradeCorrection, "x": TradeCancel}  # fmt: skip
    assert len(got.items) == len(messages)
    for message, item in zip(messages, got.items, strict=True):
        assert isinstance(item, expected[message["T"]]), (message, item)
        stamp = item["t"] if isinstance(item, dict) else item.timestamp
        assert stamp == ns_to_datetime(message["t"])
    corrections = got.of(TradeCorrection)
    assert all(Exchange(c.exchange) for c in corrections)
    assert all(c.original_id is not None and c.corrected_id is not None for c in corrections)
    [luld, *_] = [item for item in got.items if isinstance(item, dict)]
    assert set(luld) == {"T", "S", "u", "d", "i", "t", "z"}


async def test_raw_mode_gets_every_type_with_exact_nanoseconds(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    messages = generated("MSFT", minutes=3)
    stream = StockDataStream("key", "secret", raw_data=True, url_override=server.url())
    got = Collector()
    subscribe_everything(stream, got.handle, "MSFT")
    async with running(stream, kick=server):
        await server.wait_for_subscription("lulds", ["MSFT"])
        server.inject(messages)
        await got.wait_for(lambda items: len(items) >= len(messages))
    assert [item["T"] for item in got.items] == [m["T"] for m in messages]
    assert [item["t"].to_unix_nano() for item in got.items] == [m["t"] for m in messages]
    assert all(next(iter(item)) == "T" for item in got.items)


async def test_json_client_gets_every_type_with_trimmed_rfc3339_times(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    messages = generated("TSLA", minutes=3)
    channels = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
    async with raw_client(server.url("sip")) as ws:
        await handshake(ws, **{channel: ["TSLA"] for channel in channels})
        server.inject(messages)
        received: list[dict[str, Any]] = []
        while len(received) < len(messages):
            received.extend(await receive(ws, aiohttp.WSMsgType.TEXT))
    assert [m["T"] for m in received] == [m["T"] for m in messages]
    assert [m["t"] for m in received] == [format_ns_trimmed(m["t"]) for m in messages]
    for sent, got in zip(messages, received, strict=True):
        assert {k: v for k, v in got.items() if k != "t"} == {k: v for k, v in sent.items() if k != "t"}


async def test_live_synthetic_stream_carries_lulds_corrections_cancels_and_statuses(make_server) -> None:
    server = await make_server(rate_per_symbol=200.0, events=BUSY)
    stream = StockDataStream("key", "secret", url_override=server.url())
    got = Collector()
    subscribe_everything(stream, got.handle, "NVDA")
    async with running(stream):
        await got.wait_for(
            lambda items: bool(got.of(TradeCorrection) and got.of(TradeCancel) and got.of(Trade) and got.of(dict)),
            within=3 * DEADLINE,
        )
    assert {q.symbol for q in got.of(Quote)} == {"NVDA"}


# --- symbol limits and errors ----------------------------------------------------------------


async def test_405_symbol_limit_on_iex_keeps_the_previous_subscription(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    symbols = [f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(31)]
    async with raw_client(server.url("iex")) as ws:
        await handshake(ws)
        [ack] = await send_json(ws, {"action": "subscribe", "quotes": symbols[:20], "trades": symbols[10:30]})
        assert len(set(ack["quotes"]) | set(ack["trades"])) == 30
        limited = [{"T": "error", "code": 405, "msg": "symbol limit exceeded"}]
        assert await send_json(ws, {"action": "subscribe", "trades": symbols[30:]}) == limited
        assert await send_json(ws, {"action": "subscribe", "quotes": ["*"]}) == limited
        [ack] = await send_json(ws, {"action": "subscribe", "bars": symbols})  # bars are not limited
        assert ack["quotes"] == symbols[:20] and ack["trades"] == symbols[10:30] and ack["bars"] == symbols
    async with raw_client(server.url("sip")) as ws:  # no cap on sip
        await handshake(ws)
        [ack] = await send_json(ws, {"action": "subscribe", "quotes": symbols, "trades": ["*"]})
        assert ack["quotes"] == symbols and ack["trades"] == ["*"]


async def test_alpaca_py_over_the_limit_gets_405_logged_and_keeps_streaming(make_server, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="alpaca.data.live.websocket")
    server = await make_server(rate_per_symbol=20.0, symbol_limits={"iex": 2})
    stream = StockDataStream("key", "secret", url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL", "MSFT", "GOOGL")
    async with running(stream, kick=server):
        async def logged_405() -> bool:
            return any("symbol limit exceeded (405)" in r.getMessage() for r in caplog.records)

        await eventually(logged_405, DEADLINE, "alpaca-py to log the 405")
        [session] = server.sessions
        assert session.authenticated and session.subscriptions.symbols("quotes") == []
    assert server.connection_count == 1


async def test_500_internal_error_at_auth_closes_the_socket(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    server.faults.reject_auth(500)
    async with raw_client(server.url()) as ws:
        await receive(ws, aiohttp.WSMsgType.TEXT)
        assert await send_json(ws, {"action": "auth", "key": "k", "secret": "s"}) == [
            {"T": "error", "code": 500, "msg": "internal error"}
        ]
        closing = await ws.receive(timeout=DEADLINE)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1011


# --- reconnects ------------------------------------------------------------------------------


async def test_every_subscription_survives_alpaca_py_reconnects(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    stream = StockDataStream("key", "secret", url_override=server.url())
    got = Collector()
    subscribe_everything(stream, got.handle, "AMD")
    stream.subscribe_quotes(got.handle, "INTC")
    async with running(stream, kick=server):
        await server.wait_for_subscription("lulds", ["AMD"])
        [first] = server.sessions
        before = first.subscriptions.ack()
        for drop in (True, False):
            connections = server.connection_count
            await server.faults.drop(close_frame=drop)
            await server.wait_for_connections(connections + 1)
            await server.wait_for_subscription("lulds", ["AMD"])
            [session] = server.sessions
            assert session.subscriptions.ack() == before
        assert before["quotes"] == ["AMD", "INTC"] and before["corrections"] == ["AMD"]
        server.inject(generated("AMD")[:50])
        await got.wait_for(lambda items: len(items) >= 50)
    assert Counter(type(i).__name__ for i in got.items)["Quote"] >= 10


async def test_msgpack_frames_never_exceed_alpaca_py_limit(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    async with raw_client(server.url("sip"), as_msgpack=True) as ws:
        assert msgpack.unpackb((await ws.receive(timeout=DEADLINE)).data)[0]["msg"] == "connected"
        await ws.send_bytes(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
        await ws.receive(timeout=DEADLINE)
        await ws.send_bytes(msgpack.packb({"quotes": ["AAPL"], "action": "subscribe"}))
        await ws.receive(timeout=DEADLINE)
        base = now_ns()
        batch = [{"T": "q", "S": "AAPL", "bx": "V", "bp": 1.0, "bs": 1, "ax": "Q", "ap": 1.01, "as": 1,
                  "c": ["R"], "z": "C", "t": base + i} for i in range(40_000)]  # fmt: skip
        server.inject(batch)
        count = 0
        while count < len(batch):
            message = await ws.receive(timeout=DEADLINE)
            assert len(message.data) < 2**20  # alpaca-py's websockets client closes with 1009 above 1 MiB
            count += len(msgpack.unpackb(message.data))
        assert count == len(batch)
