"""The local Alpaca feed against real clients: alpaca-py's StockDataStream, aiohttp and websockets.

No mocks: every test talks to a real ``AlpacaFeedServer`` over loopback and synchronises on server or
client events with deadlines, never on sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import msgpack
import pytest
from alpaca.data.enums import Exchange
from alpaca.data.live import StockDataStream
from alpaca.data.models import Bar, Quote, Trade
from websockets.asyncio.client import connect as ws_connect

from alpaca_feed.protocol import Encoding
from alpaca_feed.subscriptions import STOCK_ACK_KEYS
from schemas.timestamps import now_ns, ns_to_datetime
from tests.integration.feed_support import (
    DEADLINE,
    KNOWN_NS,
    Collector,
    make_server,
    quote,
    raw_client,
    receive,
    running,
    send_json,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
__all__ = ["make_server"]  # a fixture: imported for pytest, not referenced by name


# --- alpaca-py, parsed and raw ----------------------------------------------------------------


async def test_alpaca_py_parses_synthetic_and_injected_data(make_server, caplog) -> None:
    caplog.set_level(logging.INFO, logger="alpaca.data.live.websocket")
    server = await make_server(rate_per_symbol=50.0, seed=11)
    stream = StockDataStream("key", "secret", raw_data=False, url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL")
    stream.subscribe_trades(got.handle, "AAPL")
    stream.subscribe_bars(got.handle, "AAPL")
    async with running(stream):
        await server.wait_for_subscription("bars", ["AAPL"])
        await got.wait_for(lambda items: len(got.of(Quote)) >= 10 and len(got.of(Trade)) >= 1)
        bar_ns = (now_ns() // 60_000_000_000) * 60_000_000_000
        reached = server.inject(
            [
                {
                    "T": "b",
                    "S": "AAPL",
                    "o": 10.0,
                    "h": 11.5,
                    "l": 9.5,
                    "c": 11.0,
                    "v": 1200,
                    "n": 7,
                    "vw": 10.4,
                    "t": bar_ns,
                },
                quote("AAPL", KNOWN_NS, 1.23),
            ]
        )
        assert reached == 1
        await got.wait_for(
            lambda items: any(q.bid_price == 1.23 for q in got.of(Quote)) and any(b.vwap == 10.4 for b in got.of(Bar))
        )

    synthetic = [q for q in got.of(Quote) if q.bid_price != 1.23]
    for item in synthetic:
        assert item.symbol == "AAPL" and item.bid_price < item.ask_price
        assert item.timestamp.tzinfo is not None and item.timestamp.utcoffset().total_seconds() == 0
        # alpaca-py types these Union[str, Exchange], so pydantic keeps plain str: check membership.
        assert Exchange(item.bid_exchange) and Exchange(item.ask_exchange)
        assert item.conditions == ["R"] and item.tape == "C"
    for trade in got.of(Trade):
        assert trade.price > 0 and trade.size > 0 and Exchange(trade.exchange)
        assert trade.conditions == ["@"] and trade.id is not None
    # A synthetic bar also arrives when the test spans a minute boundary: pick the injected one.
    [bar] = [b for b in got.of(Bar) if b.vwap == 10.4]
    assert (bar.open, bar.high, bar.low, bar.close) == (10.0, 11.5, 9.5, 11.0)
    assert (bar.volume, bar.trade_count, bar.vwap) == (1200, 7, 10.4)
    assert bar.timestamp == ns_to_datetime(bar_ns)
    [injected] = [q for q in got.of(Quote) if q.bid_price == 1.23]
    assert injected.timestamp == ns_to_datetime(KNOWN_NS)  # truncated to ...123456 µs, aware UTC
    assert injected.timestamp.microsecond == 123456
    acks = [r.getMessage() for r in caplog.records if r.getMessage().startswith("subscribed to")]
    assert acks[0] == (
        "subscribed to trades: ['AAPL'], quotes: ['AAPL'], bars: ['AAPL'], "
        "corrections: ['AAPL'], cancelErrors: ['AAPL']"
    )


async def test_alpaca_py_handshake_headers_and_session_state(make_server) -> None:
    server = await make_server(rate_per_symbol=20.0)
    stream = StockDataStream("key", "secret", url_override=server.url("sip"))
    got = Collector()
    stream.subscribe_quotes(got.handle, "MSFT")
    async with running(stream):
        await server.wait_for_subscription("quotes", ["MSFT"])
        [session] = server.sessions
        assert session.user_agent.startswith("APCA-PY/")
        assert session.encoding is Encoding.MSGPACK
        assert session.feed == "sip" and session.authenticated and session.key == "key"
        assert session.subscriptions.symbols("quotes") == ["MSFT"]
        await got.wait_for(lambda items: len(items) >= 3)
    await server.wait_for_sessions(0)


async def test_raw_mode_keeps_exact_nanoseconds_and_injection_order(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    stream = StockDataStream("key", "secret", raw_data=True, url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL")
    stream.subscribe_trades(got.handle, "AAPL")
    async with running(stream, kick=server):
        await server.wait_for_subscription("quotes", ["AAPL"])
        batch = [quote("AAPL", KNOWN_NS + i, 100 + i / 100) for i in range(300)]
        batch.insert(150, {"T": "t", "S": "AAPL", "i": 1, "x": "V", "p": 101.5, "s": 100, "c": ["@"],
                           "z": "C", "t": msgpack.Timestamp.from_unix_nano(KNOWN_NS + 150)})  # fmt: skip
        batch.insert(10, quote("MSFT", KNOWN_NS, 5.0))  # not subscribed: must not arrive
        assert server.inject(batch) == 1
        await got.wait_for(lambda items: len(items) >= 301)

    assert [item["S"] for item in got.items] == ["AAPL"] * 301
    assert [item["T"] for item in got.items] == ["q"] * 150 + ["t"] + ["q"] * 150
    quotes = [item for item in got.items if item["T"] == "q"]
    assert [q["bp"] for q in quotes] == [100 + i / 100 for i in range(300)]
    assert all(isinstance(q["t"], msgpack.Timestamp) for q in got.items)
    assert [q["t"].to_unix_nano() for q in quotes] == [KNOWN_NS + i for i in range(300)]
    assert next(iter(got.items[0])) == "T"


async def test_synthetic_quotes_have_strictly_increasing_nanosecond_times(make_server) -> None:
    server = await make_server(rate_per_symbol=200.0, seed=3)
    stream = StockDataStream("key", "secret", raw_data=True, url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "NVDA", "AMD")
    async with running(stream):
        await got.wait_for(lambda items: sum(1 for i in items if i["S"] == "AMD") >= 50)
    for symbol in ("NVDA", "AMD"):
        stamps = [i["t"].to_unix_nano() for i in got.items if i["S"] == symbol]
        assert len(stamps) >= 40
        assert all(a < b for a, b in itertools.pairwise(stamps))
        assert all(isinstance(i["bs"], int) and isinstance(i["bp"], float) for i in got.items)


async def test_client_reconnects_and_resubscribes_after_server_close(make_server) -> None:
    server = await make_server(rate_per_symbol=20.0)
    stream = StockDataStream("key", "secret", url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL")
    async with running(stream):
        await server.wait_for_subscription("quotes", ["AAPL"])
        assert await server.close_sessions(1011, "chaos") == 1
        await server.wait_for_connections(2)
        await server.wait_for_subscription("quotes", ["AAPL"])
        before = len(got.items)
        await got.wait_for(lambda items: len(items) > before)


# --- auth outcomes ----------------------------------------------------------------------------


async def test_wrong_credentials_get_402_and_the_client_keeps_retrying(make_server) -> None:
    server = await make_server(rate_per_symbol=0, key="right-key", secret="right-secret")
    async with raw_client(server.url()) as ws:
        assert await receive(ws, aiohttp.WSMsgType.TEXT) == [{"T": "success", "msg": "connected"}]
        assert await send_json(ws, {"action": "auth", "key": "right-key", "secret": "nope"}) == [
            {"T": "error", "code": 402, "msg": "auth failed"}
        ]
        assert (await ws.receive(timeout=DEADLINE)).type is aiohttp.WSMsgType.CLOSE

    stream = StockDataStream("right-key", "wrong", url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL")
    async with running(stream) as task:
        first = server.connection_count
        await server.wait_for_connections(first + 2)  # the first retry comes after 0.5-1 s of backoff
        assert not task.done()  # alpaca-py never raises on 402, it retries
    assert server.sessions == ()
    assert got.items == []


async def test_right_credentials_are_accepted(make_server) -> None:
    server = await make_server(rate_per_symbol=0, key="right-key", secret="right-secret")
    async with raw_client(server.url(), as_msgpack=True) as ws:
        await receive(ws, aiohttp.WSMsgType.BINARY)
        await ws.send_bytes(msgpack.packb({"action": "auth", "key": "right-key", "secret": "right-secret"}))
        assert await receive(ws, aiohttp.WSMsgType.BINARY) == [{"T": "success", "msg": "authenticated"}]


async def test_auth_timeout_sends_404_and_closes(make_server) -> None:
    server = await make_server(rate_per_symbol=0, auth_timeout=0.3)
    async with raw_client(server.url()) as ws:
        await receive(ws, aiohttp.WSMsgType.TEXT)
        assert await send_json(ws, {"action": "subscribe", "quotes": ["AAPL"]}) == [
            {"T": "error", "code": 401, "msg": "not authenticated"}
        ]
        assert await receive(ws, aiohttp.WSMsgType.TEXT) == [{"T": "error", "code": 404, "msg": "auth timeout"}]
        assert (await ws.receive(timeout=DEADLINE)).type is aiohttp.WSMsgType.CLOSE


async def test_second_session_per_key_gets_406_while_the_first_keeps_streaming(make_server) -> None:
    server = await make_server(rate_per_symbol=20.0)
    stream = StockDataStream("shared-key", "secret", url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL")
    async with raw_client(server.url()) as second:
        await receive(second, aiohttp.WSMsgType.TEXT)
        async with running(stream):
            await server.wait_for_subscription("quotes", ["AAPL"])
            assert await send_json(second, {"action": "auth", "key": "shared-key", "secret": "s"}) == [
                {"T": "error", "code": 406, "msg": "connection limit exceeded"}
            ]
            before = len(got.items)
            await got.wait_for(lambda items: len(items) >= before + 5)  # the holder is unaffected
            async with raw_client(server.url("sip")) as other_feed:  # the limit is per (key, feed)
                await receive(other_feed, aiohttp.WSMsgType.TEXT)
                assert await send_json(other_feed, {"action": "auth", "key": "shared-key", "secret": "s"}) == [
                    {"T": "success", "msg": "authenticated"}
                ]
        await server.wait_for_sessions(0)
        # The refused socket stays open until its auth deadline and may now take the free slot.
        assert await send_json(second, {"action": "auth", "key": "shared-key", "secret": "s"}) == [
            {"T": "success", "msg": "authenticated"}
        ]


# --- raw clients: JSON, errors, acks ----------------------------------------------------------


async def test_json_client_gets_text_frames_acks_and_errors(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    async with raw_client(server.url()) as ws:
        assert await receive(ws, aiohttp.WSMsgType.TEXT) == [{"T": "success", "msg": "connected"}]
        assert await send_json(ws, {"action": "auth", "key": "k", "secret": "s"}) == [
            {"T": "success", "msg": "authenticated"}
        ]
        assert await send_json(ws, {"action": "auth", "key": "k", "secret": "s"}) == [
            {"T": "error", "code": 403, "msg": "already authenticated"}
        ]
        invalid = [{"T": "error", "code": 400, "msg": "invalid syntax"}]
        assert await send_json(ws, {"action": "subscribe", "quotes": ["not a symbol"]}) == invalid
        assert await send_json(ws, {"action": "dance"}) == invalid
        assert await send_json(ws, ["action", "subscribe"]) == invalid
        await ws.send_str("{nope")
        assert await receive(ws, aiohttp.WSMsgType.TEXT) == invalid
        [ack] = await send_json(ws, {"action": "subscribe", "quotes": ["AAPL", "MSFT"], "trades": ["AAPL"]})
        assert list(ack) == ["T", *STOCK_ACK_KEYS]
        assert ack["quotes"] == ["AAPL", "MSFT"]
        assert ack["trades"] == ack["corrections"] == ack["cancelErrors"] == ["AAPL"]
        [ack] = await send_json(ws, {"action": "subscribe", "bars": ["*"]})
        assert ack["quotes"] == ["AAPL", "MSFT"] and ack["bars"] == ["*"]  # additive

        type_last = {**{k: v for k, v in quote("AAPL", KNOWN_NS, 10.0).items() if k != "T"}, "T": "q"}
        assert server.inject([type_last, quote("TSLA", KNOWN_NS + 1, 11.0)]) == 1
        [data] = await receive(ws, aiohttp.WSMsgType.TEXT)
        assert data["S"] == "AAPL" and data["t"] == "2023-11-14T22:13:20.123456789Z"
        assert next(iter(data)) == "T"

        [ack] = await send_json(ws, {"action": "unsubscribe", "quotes": ["AAPL"]})
        assert ack["quotes"] == ["MSFT"] and ack["bars"] == ["*"]
        assert server.inject([quote("AAPL", KNOWN_NS, 10.0)]) == 0


async def test_client_that_falls_too_far_behind_gets_407_and_is_dropped(make_server) -> None:
    server = await make_server(rate_per_symbol=0, max_pending_bytes=4096)
    async with raw_client(server.url()) as ws:
        await receive(ws, aiohttp.WSMsgType.TEXT)
        await send_json(ws, {"action": "auth", "key": "k", "secret": "s"})
        await send_json(ws, {"action": "subscribe", "quotes": ["AAPL"]})
        server.inject([quote("AAPL", KNOWN_NS + i, 10.0) for i in range(200)])  # ~25 KB queued at once
        assert await receive(ws, aiohttp.WSMsgType.TEXT) == [{"T": "error", "code": 407, "msg": "slow client"}]
        assert (await ws.receive(timeout=DEADLINE)).type is aiohttp.WSMsgType.CLOSE
    await server.wait_for_sessions(0)


async def test_test_feed_acks_three_keys_and_only_carries_fakepaca(make_server) -> None:
    server = await make_server(rate_per_symbol=50.0)
    async with raw_client(server.url("iex")) as iex, raw_client(server.url("test"), as_msgpack=True) as ws:
        # An iex session makes the market simulate AAPL; the test feed must still not carry it.
        await receive(iex, aiohttp.WSMsgType.TEXT)
        await send_json(iex, {"action": "auth", "key": "k", "secret": "s"})
        await send_json(iex, {"action": "subscribe", "quotes": ["AAPL"]})
        assert (await receive(iex, aiohttp.WSMsgType.TEXT))[0]["S"] == "AAPL"

        await receive(ws, aiohttp.WSMsgType.BINARY)
        await ws.send_bytes(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
        await receive(ws, aiohttp.WSMsgType.BINARY)
        await ws.send_bytes(msgpack.packb({"quotes": ["FAKEPACA", "AAPL"], "action": "subscribe"}))
        assert await receive(ws, aiohttp.WSMsgType.BINARY) == [
            {"T": "subscription", "trades": [], "quotes": ["FAKEPACA", "AAPL"], "bars": []}
        ]
        await ws.send_bytes(msgpack.packb({"statuses": ["FAKEPACA"], "action": "subscribe"}))
        assert await receive(ws, aiohttp.WSMsgType.BINARY) == [
            {"T": "error", "code": 410, "msg": "invalid subscribe action for this feed"}
        ]
        seen: list[dict[str, Any]] = []
        async with asyncio.timeout(DEADLINE):
            while len(seen) < 10:
                seen.extend(await receive(ws, aiohttp.WSMsgType.BINARY))
        assert {m["S"] for m in seen} == {"FAKEPACA"}
        assert all(isinstance(m["t"], msgpack.Timestamp) for m in seen)


async def test_fragmented_32k_subscribe_is_reassembled(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    symbols = [f"S{i:04d}" for i in range(6000)]
    payload = msgpack.packb({"quotes": symbols, "action": "subscribe"})
    assert len(payload) > 32768
    async with ws_connect(server.url("sip"), additional_headers={"Content-Type": "application/msgpack"}) as ws:
        assert msgpack.unpackb(await ws.recv())[0]["msg"] == "connected"
        await ws.send(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
        assert msgpack.unpackb(await ws.recv())[0]["msg"] == "authenticated"
        # Sent like alpaca-py does: one message split into 32 KiB fragments.
        await ws.send(payload[i : i + 32768] for i in range(0, len(payload), 32768))
        [ack] = msgpack.unpackb(await ws.recv())
        assert ack["T"] == "subscription" and ack["quotes"] == symbols
        await server.wait_for_subscription("quotes", symbols[-3:])


async def test_unknown_paths_are_http_404(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    async with aiohttp.ClientSession() as http:
        for path in ("/v2/bogus", "/v1beta1/news", "/"):
            async with http.get(f"http://127.0.0.1:{server.port}{path}") as response:
                assert response.status == 404, path
    assert server.connection_count == 0


async def test_stop_closes_sessions_with_a_close_frame_and_is_idempotent(make_server) -> None:
    server = await make_server(rate_per_symbol=10.0)
    async with raw_client(server.url()) as ws:
        await receive(ws, aiohttp.WSMsgType.TEXT)
        await send_json(ws, {"action": "auth", "key": "k", "secret": "s"})
        await send_json(ws, {"action": "subscribe", "quotes": ["AAPL"]})
        await server.stop()
        async with asyncio.timeout(DEADLINE):
            while (message := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                pass  # data queued before the close may be discarded or delivered
        assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1001
    await server.stop()
    with pytest.raises(TimeoutError):
        await server.wait_for_subscription("quotes", ["AAPL"], timeout=0.05)


# --- CLI --------------------------------------------------------------------------------------


async def test_cli_prints_the_listening_line_and_exits_cleanly_on_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alpaca_feed", "serve", "--port", "0", "--rate", "5",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"},
    )  # fmt: skip
    try:
        async with asyncio.timeout(DEADLINE):
            line = (await process.stdout.readline()).decode()
        match = re.fullmatch(r"tickwire-feed listening on ws://127\.0\.0\.1:(\d+)/v2/\{feed\}\n", line)
        assert match, line
        async with raw_client(f"ws://127.0.0.1:{match.group(1)}/v2/iex") as ws:
            assert await receive(ws, aiohttp.WSMsgType.TEXT) == [{"T": "success", "msg": "connected"}]
            process.send_signal(signal.SIGTERM)
            assert (await ws.receive(timeout=DEADLINE)).type is aiohttp.WSMsgType.CLOSE
        async with asyncio.timeout(DEADLINE):
            stdout, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
        assert stdout == b""  # exactly one line on stdout
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
