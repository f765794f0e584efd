"""Fault injection (``server.faults``) against real clients: alpaca-py's StockDataStream and aiohttp.

Each test triggers one fault and checks what a client sees on the wire, synchronising on server or
client events with deadlines.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import msgpack
import orjson
import pytest
from alpaca.data.live import StockDataStream
from alpaca.data.models import Quote, TradingStatus

from alpaca_feed.fault_script import parse_fault_script
from alpaca_feed.faults import FaultError
from tests.integration.feed_support import (
    DEADLINE,
    KNOWN_NS,
    Collector,
    handshake,
    make_server,
    quote,
    raw_client,
    receive,
    running,
    send_json,
)

pytestmark = pytest.mark.integration
__all__ = ["make_server"]  # a fixture: imported for pytest, not referenced by name


async def msgpack_handshake(ws: aiohttp.ClientWebSocketResponse, **subscribe: list[str]) -> None:
    """Greeting, auth and one subscribe on a msgpack client (the way alpaca-py talks)."""
    assert await receive(ws, aiohttp.WSMsgType.BINARY) == [{"T": "success", "msg": "connected"}]
    await ws.send_bytes(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
    assert await receive(ws, aiohttp.WSMsgType.BINARY) == [{"T": "success", "msg": "authenticated"}]
    await ws.send_bytes(msgpack.packb({**subscribe, "action": "subscribe"}))
    assert (await receive(ws, aiohttp.WSMsgType.BINARY))[0]["T"] == "subscription"


async def receive_type(ws: aiohttp.ClientWebSocketResponse, expect: aiohttp.WSMsgType) -> Any:
    message = await ws.receive(timeout=DEADLINE)
    assert message.type is expect, message
    return message.data


# --- drop ------------------------------------------------------------------------------------


async def test_drop_with_close_frame_sends_1011_and_alpaca_py_resubscribes(make_server) -> None:
    server = await make_server(rate_per_symbol=20.0)
    async with raw_client(server.url()) as ws:
        await handshake(ws, quotes=["AAPL"])
        stream = StockDataStream("other-key", "secret", url_override=server.url())
        got = Collector()
        stream.subscribe_quotes(got.handle, "MSFT")
        async with running(stream):
            await server.wait_for_subscription("quotes", ["MSFT"])
            assert await server.faults.drop() == 2
            while (message := await ws.receive(timeout=DEADLINE)).type is aiohttp.WSMsgType.TEXT:
                pass  # data queued before the drop
            assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1011
            await server.wait_for_connections(3)
            await server.wait_for_subscription("quotes", ["MSFT"])
            before = len(got.items)
            await got.wait_for(lambda items: len(items) > before)


async def test_drop_without_close_frame_is_an_abrupt_disconnect(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    async with raw_client(server.url()) as ws:
        await handshake(ws, quotes=["AAPL"])
        assert await server.faults.drop(close_frame=False) == 1
        message = await ws.receive(timeout=DEADLINE)
        # No close frame arrived: aiohttp reports the lost connection, not a CLOSE with a code.
        assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR), message
        assert ws.close_code != 1011
    await server.wait_for_sessions(0)

    stream = StockDataStream("key", "secret", url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL")
    async with running(stream, kick=server):
        await server.wait_for_subscription("quotes", ["AAPL"])
        connections = server.connection_count
        await server.faults.drop(close_frame=False)
        await server.wait_for_connections(connections + 1)
        await server.wait_for_subscription("quotes", ["AAPL"])
        server.inject([quote("AAPL", KNOWN_NS, 12.34)])
        await got.wait_for(lambda items: any(q.bid_price == 12.34 for q in items))


# --- mute ------------------------------------------------------------------------------------


async def test_mute_silences_data_but_not_control_or_pings(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    async with aiohttp.ClientSession() as http, http.ws_connect(server.url(), autoping=False) as ws:
        await handshake(ws, quotes=["AAPL"])
        server.faults.mute()
        assert server.faults.muted
        assert server.inject([quote("AAPL", KNOWN_NS, 1.0)]) == 0
        [ack] = await send_json(ws, {"action": "subscribe", "trades": ["AAPL"]})  # control still flows
        assert ack["T"] == "subscription" and ack["trades"] == ["AAPL"]
        await ws.ping(b"alive?")
        pong = await ws.receive(timeout=DEADLINE)
        assert pong.type is aiohttp.WSMsgType.PONG and pong.data == b"alive?"
        server.faults.unmute()
        assert server.inject([quote("AAPL", KNOWN_NS + 1, 2.0)]) == 1
        [data] = await receive(ws, aiohttp.WSMsgType.TEXT)
        assert data["bp"] == 2.0  # the muted quote was never sent


async def test_timed_mute_ends_by_itself_and_alpaca_py_data_timeout_reconnects(make_server) -> None:
    server = await make_server(rate_per_symbol=50.0)
    stream = StockDataStream("key", "secret", url_override=server.url(), data_timeout=0.5)
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL")
    async with running(stream):
        await got.wait_for(lambda items: len(items) >= 3)
        connections = server.connection_count
        server.faults.mute(seconds=3.0)
        await server.wait_for_connections(connections + 1)  # alpaca-py gave up on the silent socket
        await server.wait_until(lambda: not server.faults.muted, timeout=DEADLINE, what="the mute to end")
        before = len(got.items)
        await got.wait_for(lambda items: len(items) > before)


# --- auth and handshake refusals -------------------------------------------------------------


async def test_reject_auth_406_keeps_the_socket_and_only_the_next_attempts_fail(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    server.faults.reject_auth(406, count=2)
    async with raw_client(server.url()) as ws:
        await receive(ws, aiohttp.WSMsgType.TEXT)
        refused = [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
        assert await send_json(ws, {"action": "auth", "key": "k", "secret": "s"}) == refused
        assert await send_json(ws, {"action": "auth", "key": "k", "secret": "s"}) == refused
        assert await send_json(ws, {"action": "auth", "key": "k", "secret": "s"}) == [
            {"T": "success", "msg": "authenticated"}
        ]
    assert server.auth_rejections == 2


@pytest.mark.parametrize(("code", "text"), [(402, "auth failed"), (409, "insufficient subscription")])
async def test_reject_auth_402_and_409_close_the_socket(make_server, code: int, text: str) -> None:
    server = await make_server(rate_per_symbol=0)
    server.faults.reject_auth(code)
    async with raw_client(server.url(), as_msgpack=True) as ws:
        await receive(ws, aiohttp.WSMsgType.BINARY)
        await ws.send_bytes(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
        assert await receive(ws, aiohttp.WSMsgType.BINARY) == [{"T": "error", "code": code, "msg": text}]
        assert (await ws.receive(timeout=DEADLINE)).type is aiohttp.WSMsgType.CLOSE


async def test_alpaca_py_retries_through_406_and_402_and_gives_up_on_409(make_server) -> None:
    server = await make_server(rate_per_symbol=20.0)
    server.faults.reject_auth(406)
    server.faults.reject_auth(402)
    stream = StockDataStream("key", "secret", url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL")
    async with running(stream) as task:
        await got.wait_for(lambda items: len(items) >= 1, within=3 * DEADLINE)  # backoff 0.5-1 s, 1-2 s
        assert server.auth_rejections == 2 and server.connection_count == 3
        assert not task.done()

    server.faults.reject_auth(409)
    stream = StockDataStream("key", "secret", url_override=server.url())
    stream.subscribe_quotes(got.handle, "AAPL")
    async with running(stream) as task:
        done, _ = await asyncio.wait({task}, timeout=DEADLINE)
        assert done, "alpaca-py kept running after 409"
        assert task.exception() is None  # run() returns quietly on insufficient subscription
    assert server.auth_rejections == 3


async def test_reject_handshakes_answers_upgrades_with_429_for_a_while(make_server, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="alpaca.data.live.websocket")
    server = await make_server(rate_per_symbol=20.0)
    server.faults.reject_handshakes(429, seconds=1.0)
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await http.ws_connect(server.url())
        assert caught.value.status == 429
    assert server.handshake_rejections == 1

    stream = StockDataStream("key", "secret", url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL")
    async with running(stream):
        await got.wait_for(lambda items: len(items) >= 1, within=3 * DEADLINE)
    assert server.handshake_rejections >= 2  # alpaca-py hit the refusal, backed off and got through
    assert any("HTTP 429" in record.getMessage() for record in caplog.records)  # InvalidStatus, backoff path


# --- slow client -----------------------------------------------------------------------------


async def test_slow_client_fault_turns_the_next_backlog_into_407(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    async with raw_client(server.url()) as ws:
        await handshake(ws, quotes=["AAPL"])
        assert server.inject([quote("AAPL", KNOWN_NS, 1.0)]) == 1
        assert (await receive(ws, aiohttp.WSMsgType.TEXT))[0]["bp"] == 1.0  # fine before the fault
        server.faults.slow_client(64)
        server.inject([quote("AAPL", KNOWN_NS + 1, 2.0)])
        assert await receive(ws, aiohttp.WSMsgType.TEXT) == [{"T": "error", "code": 407, "msg": "slow client"}]
        assert (await ws.receive(timeout=DEADLINE)).type is aiohttp.WSMsgType.CLOSE
    server.faults.clear()
    async with raw_client(server.url()) as ws:
        await handshake(ws, quotes=["AAPL"])
        server.inject([quote("AAPL", KNOWN_NS + 2, 3.0)])
        assert (await receive(ws, aiohttp.WSMsgType.TEXT))[0]["bp"] == 3.0


# --- malformed frames and bad quotes ---------------------------------------------------------


async def test_malformed_frames_on_a_msgpack_session(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    async with raw_client(server.url(), as_msgpack=True) as ws:
        await msgpack_handshake(ws, quotes=["MSFT"])
        assert server.faults.send_malformed("bad_msgpack") == 1
        message = await ws.receive(timeout=DEADLINE)
        assert message.type is aiohttp.WSMsgType.BINARY
        with pytest.raises(ValueError):
            msgpack.unpackb(message.data)

        server.faults.send_malformed("text_in_msgpack_session")
        [text_quote] = orjson.loads(await receive_type(ws, aiohttp.WSMsgType.TEXT))
        assert text_quote["S"] == "MSFT" and isinstance(text_quote["t"], str)

        server.faults.send_malformed("string_timestamp")
        [stringly] = await receive(ws, aiohttp.WSMsgType.BINARY)
        assert stringly["S"] == "MSFT" and isinstance(stringly["t"], str) and stringly["bp"] < stringly["ap"]

        server.faults.send_malformed("missing_field", symbol="TSLA")
        [partial] = await receive(ws, aiohttp.WSMsgType.BINARY)
        assert partial["S"] == "TSLA" and "bp" not in partial and isinstance(partial["t"], msgpack.Timestamp)
        assert server.connection_count == 1  # nothing closed


async def test_malformed_frames_on_a_json_session(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    async with raw_client(server.url()) as ws:
        await handshake(ws, quotes=["AAPL"])
        server.faults.send_malformed("bad_msgpack")
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(await receive_type(ws, aiohttp.WSMsgType.TEXT))
        server.faults.send_malformed("text_in_msgpack_session")
        [binary] = msgpack.unpackb(await receive_type(ws, aiohttp.WSMsgType.BINARY))
        assert binary["S"] == "AAPL"
        server.faults.send_malformed("string_timestamp")
        [integer_t] = await receive(ws, aiohttp.WSMsgType.TEXT)
        assert isinstance(integer_t["t"], int)
        server.faults.send_malformed("missing_field")
        [partial] = await receive(ws, aiohttp.WSMsgType.TEXT)
        assert "bp" not in partial and isinstance(partial["t"], str)


async def test_alpaca_py_survives_malformed_frames_on_the_same_socket(make_server, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="alpaca.data.live.websocket")
    server = await make_server(rate_per_symbol=0)
    stream = StockDataStream("key", "secret", url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL")
    async with running(stream, kick=server):
        await server.wait_for_subscription("quotes", ["AAPL"])
        for kind in ("bad_msgpack", "text_in_msgpack_session", "string_timestamp", "missing_field"):
            assert server.faults.send_malformed(kind) == 1
        server.inject([quote("AAPL", KNOWN_NS, 7.77)])
        await got.wait_for(lambda items: len(items) >= 1)
    assert [q.bid_price for q in got.items] == [7.77]  # every malformed frame was dropped by the client
    assert server.connection_count == 1  # and none made it reconnect
    assert len([r for r in caplog.records if "error during websocket communication" in r.getMessage()]) >= 4


@pytest.mark.parametrize("kind", ["crossed", "locked", "zero", "negative", "out_of_order"])
async def test_bad_quotes_reach_subscribers(make_server, kind: str) -> None:
    server = await make_server(rate_per_symbol=0)
    async with raw_client(server.url(), as_msgpack=True) as ws:
        await msgpack_handshake(ws, quotes=["AAPL"])
        sane = server.faults.bad_quote("AAPL", "locked")  # stamps the symbol's clock
        [first] = await receive(ws, aiohttp.WSMsgType.BINARY)
        sent = server.faults.bad_quote("AAPL", kind)
        [bad] = await receive(ws, aiohttp.WSMsgType.BINARY)
    assert first["bp"] == first["ap"] == sane["bp"]
    assert bad["t"].to_unix_nano() == sent["t"]
    checks = {
        "crossed": bad["bp"] > bad["ap"],
        "locked": bad["bp"] == bad["ap"] > 0,
        "zero": bad["bp"] == 0,
        "negative": bad["bp"] < 0,
        "out_of_order": bad["t"].to_unix_nano() < first["t"].to_unix_nano() and 0 < bad["bp"] < bad["ap"],
    }
    assert checks[kind], bad


# --- halts -----------------------------------------------------------------------------------


async def test_halt_publishes_a_status_and_stops_synthetic_quotes_until_resume(make_server) -> None:
    server = await make_server(rate_per_symbol=100.0)
    stream = StockDataStream("key", "secret", url_override=server.url())
    got = Collector()
    stream.subscribe_quotes(got.handle, "AAPL", "MSFT")
    stream.subscribe_trading_statuses(got.handle, "AAPL")
    async with running(stream):
        await got.wait_for(lambda items: {i.symbol for i in got.of(Quote)} == {"AAPL", "MSFT"})
        halt = server.faults.halt("AAPL")
        await got.wait_for(lambda items: bool(got.of(TradingStatus)))
        halted_at = len(got.items)
        await got.wait_for(lambda items: sum(1 for i in items[halted_at:] if i.symbol == "MSFT") >= 20)
        assert [i for i in got.items[halted_at:] if i.symbol == "AAPL"] == []
        server.faults.resume("AAPL")
        await got.wait_for(lambda items: len(got.of(TradingStatus)) == 2)
        resumed_at = len(got.items)
        await got.wait_for(lambda items: any(i.symbol == "AAPL" for i in items[resumed_at:]))

    halted, resumed = got.of(TradingStatus)
    assert (halted.status_code, halted.status_message, halted.reason_code) == ("H", "Trading Halt", "T1")
    assert halted.reason_message == "Halt News Pending" and halted.tape == "C"
    assert (resumed.status_code, resumed.status_message, resumed.reason_code) == ("T", "Trading Resumption", "T3")
    assert halt["t"] > 0


# --- by name ---------------------------------------------------------------------------------


async def test_apply_runs_faults_by_name_and_refuses_bad_requests(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    async with raw_client(server.url()) as ws:
        await handshake(ws, quotes=["AAPL"])
        assert await server.faults.apply("drop", {"close_frame": True}) == 1
        assert (await ws.receive(timeout=DEADLINE)).type is aiohttp.WSMsgType.CLOSE
    await server.faults.apply("mute", {"seconds": 30})
    assert server.faults.muted
    await server.faults.apply("unmute")
    assert not server.faults.muted
    refused = [
        ("explode", {}),
        ("drop", {"close_frames": True}),
        ("bad_quote", {"symbol": "AAPL"}),
        ("bad_quote", {"symbol": "AAPL", "kind": "weird"}),
        ("reject_auth", {"code": 499}),
    ]
    for name, arguments in refused:
        with pytest.raises(FaultError):
            await server.faults.apply(name, arguments)


# --- over HTTP -------------------------------------------------------------------------------


async def test_control_endpoint_triggers_faults_with_json_arguments(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    control = f"{server.http_url()}/_control/faults"
    async with aiohttp.ClientSession() as http, raw_client(server.url()) as ws:
        await handshake(ws, quotes=["AAPL"])
        async with http.get(control) as response:
            assert "drop" in (await response.json())["faults"]
        async with http.post(f"{control}/bad_quote", json={"symbol": "AAPL", "kind": "crossed"}) as response:
            assert response.status == 200
            sent = (await response.json())["result"]
        [crossed] = await receive(ws, aiohttp.WSMsgType.TEXT)
        assert crossed["bp"] > crossed["ap"] and crossed["bp"] == sent["bp"]
        async with http.post(f"{control}/mute") as response:  # no body: the defaults
            assert response.status == 200 and server.faults.muted
        async with http.post(f"{control}/unmute", data=b"") as response:
            assert response.status == 200 and not server.faults.muted
        for name, body in [("explode", b"{}"), ("drop", b"[1]"), ("drop", b"{nope"), ("mute", b'{"seconds": -1}')]:
            async with http.post(f"{control}/{name}", data=body) as response:
                assert response.status == 400, name
                assert set(await response.json()) == {"code", "message"}
        async with http.post(f"{control}/drop", json={"close_frame": False}) as response:
            assert (await response.json()) == {"fault": "drop", "result": 1}
        assert (await ws.receive(timeout=DEADLINE)).type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)


async def test_control_endpoint_can_be_turned_off(make_server) -> None:
    server = await make_server(rate_per_symbol=0, control=False)
    async with aiohttp.ClientSession() as http, http.post(f"{server.http_url()}/_control/faults/drop") as response:
        assert response.status in (404, 405)


# --- rates and scripts -----------------------------------------------------------------------


@pytest.mark.parametrize("planned", [False, True])
async def test_bursts_multiply_the_synthetic_rate(make_server, planned: bool) -> None:
    # 5 quotes/s would need 30 s for 150 quotes; a 40x burst delivers them in about a second.
    server = await make_server(rate_per_symbol=5.0, bursts=["40x30@open"] if planned else [])
    if not planned:
        server.faults.burst(factor=40, seconds=30)
    async with raw_client(server.url()) as ws:
        await handshake(ws, quotes=["AAPL"])
        quotes = 0
        while quotes < 150:
            quotes += sum(1 for m in await receive(ws, aiohttp.WSMsgType.TEXT) if m["T"] == "q")


async def test_a_fault_script_runs_its_steps_in_time_order(make_server) -> None:
    server = await make_server(rate_per_symbol=0)
    steps = parse_fault_script('{"at_s": 0.3, "fault": "unmute"}\n{"at_s": 0, "fault": "mute"}\n')
    task = server.run_fault_script(steps)
    await server.wait_until(lambda: server.faults.muted, timeout=DEADLINE, what="the scripted mute")
    await server.wait_until(lambda: not server.faults.muted, timeout=DEADLINE, what="the scripted unmute")
    assert await asyncio.wait_for(task, DEADLINE) == 2
