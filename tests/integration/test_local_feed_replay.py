"""Record from a local feed with the real alpaca-py recorder, replay the file, compare; plus the CLI.

The reference is what the feed sent: known messages of every type are injected into the recording
feed, the recording must hold exactly them, and a replay must deliver exactly them again to a real
alpaca-py client (same order, same nanosecond timestamps).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from alpaca.data.live import StockDataStream

from alpaca_feed.market import EventRates, MarketModel
from alpaca_feed.recorder import Recorder
from alpaca_feed.recording import RecordingReader, RecordingWriter
from schemas.timestamps import NS_PER_SECOND, now_ns
from tests.helpers import eventually
from tests.integration.feed_support import (
    DEADLINE,
    Collector,
    handshake,
    make_server,
    quote,
    raw_client,
    receive,
    running,
)

pytestmark = pytest.mark.integration


def as_received(message: dict[str, Any]) -> dict[str, Any]:
    """The model's message as a client decodes it (its shared condition tuples arrive as arrays)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in message.items()}
__all__ = ["make_server"]  # a fixture: imported for pytest, not referenced by name

REPO_ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")


def session_messages(symbols: tuple[str, ...] = ("AAPL", "MSFT")) -> list[dict[str, Any]]:
    """Two simulated minutes of every message type for ``symbols``, interleaved as a live feed is."""
    model = MarketModel(5, events=EventRates(late_trade=1.0, correction=0.1, cancel=0.1, pause=1.0, pause_seconds=1))
    start = (now_ns() // 60_000_000_000 - 5) * 60_000_000_000
    events: list[dict[str, Any]] = []
    for step in range(1300):
        at = start + step * 100_000_000
        events.extend(model.timed_events(at))
        for symbol in symbols:
            events.extend(model.next_events(symbol, at))
    assert {e["T"] for e in events} == {"q", "t", "b", "d", "u", "s", "l", "c", "x"}
    return [as_received(e) for e in events]


def comparable(message: dict[str, Any]) -> dict[str, Any]:
    """A raw alpaca-py message with ``t`` as ns, to compare with what was sent."""
    t = message["t"]
    return {**message, "t": t if isinstance(t, int) else t.to_unix_nano()}


async def collect_replay(server: Any, path: Path, expected: int, **options: Any) -> list[dict[str, Any]]:
    stream = StockDataStream("key", "secret", raw_data=True, url_override=server.url("sip"))
    got = Collector()
    stream.subscribe_trades(got.handle, "*")
    stream.subscribe_quotes(got.handle, "*")
    stream.subscribe_bars(got.handle, "*")
    stream.subscribe_updated_bars(got.handle, "*")
    stream.subscribe_daily_bars(got.handle, "*")
    stream.subscribe_trading_statuses(got.handle, "*")
    stream.register_trade_corrections(got.handle)
    stream.register_trade_cancels(got.handle)
    stream._subscribe(got.handle, ("*",), stream._handlers["lulds"])
    async with running(stream, kick=server):
        task = server.replay(path, **options)  # waits for the subscription
        assert await asyncio.wait_for(task, 3 * DEADLINE) == expected
        await got.wait_for(lambda items: len(items) >= expected)
    return [comparable(item) for item in got.items]


@pytest.mark.parametrize("suffix", [".jsonl", ".msgpack"])
async def test_record_then_replay_delivers_the_same_messages_in_the_same_order(
    make_server, tmp_path: Path, suffix: str
) -> None:
    source = await make_server(rate_per_symbol=0)
    sent = session_messages()
    path = tmp_path / f"session{suffix}"
    recorder = Recorder(path, key="k", secret="s", url=source.url("sip"), symbols=("AAPL", "MSFT"), channels=CHANNELS)
    stop = asyncio.Event()
    recording = asyncio.create_task(recorder.run(stop))
    await source.wait_for_subscription("lulds", ["AAPL", "MSFT"])
    assert source.inject(sent) == 1

    async def all_written() -> bool:
        return recorder.written == len(sent)

    await eventually(all_written, DEADLINE, "the recorder to write every message")
    stop.set()
    assert await asyncio.wait_for(recording, 3 * DEADLINE) == len(sent)
    recorded = list(RecordingReader(path))
    assert recorded == sent  # the file holds exactly what the feed sent, t in exact ns

    replayer = await make_server(rate_per_symbol=0)
    replayed = await collect_replay(replayer, path, len(sent), speed=0)
    assert replayed == sent
    msft_quotes = [m["t"] for m in sent if m["T"] == "q" and m["S"] == "MSFT"]
    assert replayer.history.latest("quotes", "MSFT")[0] == max(msft_quotes)  # replays feed REST too


async def test_replay_paces_by_message_time_and_speed(make_server, tmp_path: Path) -> None:
    path = tmp_path / "paced.jsonl"
    base = 1_700_000_000 * NS_PER_SECOND
    writer = RecordingWriter(path)
    writer.write([quote("AAPL", base + i * NS_PER_SECOND // 10, 10.0 + i / 100) for i in range(11)])  # 1 s of data
    writer.close()
    server = await make_server(rate_per_symbol=0)
    async with raw_client(server.url()) as ws:
        await handshake(ws, quotes=["AAPL"])
        task = server.replay(path, speed=2.0)  # 1 s of data in about 0.5 s
        arrivals: list[float] = []
        stamps: list[str] = []
        while len(stamps) < 11:
            for message in await receive(ws, aiohttp.WSMsgType.TEXT):
                arrivals.append(time.monotonic())
                stamps.append(message["t"])
        assert await asyncio.wait_for(task, DEADLINE) == 11
    assert stamps[0] == "2023-11-14T22:13:20Z" and stamps[-1] == "2023-11-14T22:13:21Z"  # intact
    assert arrivals[-1] - arrivals[0] >= 0.45  # never sooner than the recording says (machine load only adds)


async def test_shift_to_now_moves_the_whole_session_to_the_present(make_server, tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    base = 1_600_000_000 * NS_PER_SECOND
    writer = RecordingWriter(path)
    writer.write([quote("AAPL", base + i, 10.0) for i in range(5)])
    writer.close()
    server = await make_server(rate_per_symbol=0)
    async with raw_client(server.url(), as_msgpack=True) as ws:
        await receive(ws, aiohttp.WSMsgType.BINARY)
        await ws.send_str(orjson.dumps({"action": "auth", "key": "k", "secret": "s"}).decode())
        await receive(ws, aiohttp.WSMsgType.BINARY)
        await ws.send_str(orjson.dumps({"action": "subscribe", "quotes": ["AAPL"]}).decode())
        await receive(ws, aiohttp.WSMsgType.BINARY)
        before = now_ns()
        server.replay(path, speed=0, shift_to_now=True)
        got: list[dict[str, Any]] = []
        while len(got) < 5:
            got.extend(await receive(ws, aiohttp.WSMsgType.BINARY))
    stamps = [m["t"].to_unix_nano() for m in got]
    assert stamps[0] >= before and [t - stamps[0] for t in stamps] == [0, 1, 2, 3, 4]


# --- command line ----------------------------------------------------------------------------


async def start_cli(*arguments: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tickwire", "feed", *arguments,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


async def banner_port(process: asyncio.subprocess.Process) -> int:
    async with asyncio.timeout(DEADLINE):
        line = (await process.stdout.readline()).decode()
    match = re.fullmatch(r"tickwire-feed listening on ws://127\.0\.0\.1:(\d+)/v2/\{feed\}\n", line)
    assert match, line
    return int(match.group(1))


async def finish(process: asyncio.subprocess.Process) -> tuple[bytes, bytes]:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(DEADLINE):
        return await process.communicate()


async def test_cli_replays_a_file_and_runs_a_fault_script(tmp_path: Path) -> None:
    path = tmp_path / "cli.jsonl"
    sent = [quote("AAPL", 1_700_000_000 * NS_PER_SECOND + i, 10.0 + i / 100) for i in range(500)]
    writer = RecordingWriter(path)
    writer.write(sent)
    writer.close()
    script = tmp_path / "faults.jsonl"
    script.write_text('{"at_s": 0, "fault": "reject_auth", "code": 406}\nnot json\n')
    process = await start_cli("serve", "--port", "0", "--rate", "0", "--replay", str(path), "--speed", "max",
                              "--fault-script", str(script))  # fmt: skip
    try:
        port = await banner_port(process)
        async with raw_client(f"ws://127.0.0.1:{port}/v2/iex") as ws:
            await receive(ws, aiohttp.WSMsgType.TEXT)
            auth = orjson.dumps({"action": "auth", "key": "k", "secret": "s"}).decode()
            await ws.send_str(auth)
            assert (await receive(ws, aiohttp.WSMsgType.TEXT))[0]["code"] == 406  # the scripted fault
            await ws.send_str(auth)
            assert (await receive(ws, aiohttp.WSMsgType.TEXT))[0]["msg"] == "authenticated"
            await ws.send_str(orjson.dumps({"action": "subscribe", "quotes": ["AAPL"]}).decode())
            await receive(ws, aiohttp.WSMsgType.TEXT)
            got: list[dict[str, Any]] = []
            while len(got) < len(sent):
                got.extend(await receive(ws, aiohttp.WSMsgType.TEXT))
        assert [m["bp"] for m in got] == [m["bp"] for m in sent]
    finally:
        _, stderr = await finish(process)
    assert process.returncode == 0, stderr.decode()
    assert b"not JSON" in stderr  # the bad script line: one log line, and the feed kept running


async def test_cli_record_captures_a_local_feed(make_server, tmp_path: Path) -> None:
    server = await make_server(rate_per_symbol=100.0, events=EventRates.none())
    out = tmp_path / "captured.msgpack"
    process = await start_cli("record", str(out), "--url", server.url("sip"), "--key", "k", "--secret", "s",
                              "--symbols", "NVDA,AMD", "--channels", "quotes,trades")  # fmt: skip
    try:
        await server.wait_for_subscription("quotes", ["NVDA", "AMD"], timeout=3 * DEADLINE)

        async def captured() -> bool:
            return out.exists() and sum(1 for _ in RecordingReader(out)) >= 50

        await eventually(captured, DEADLINE, "50 recorded messages")
    finally:
        _, stderr = await finish(process)
    assert process.returncode == 0, stderr.decode()
    recorded = list(RecordingReader(out))
    assert {m["S"] for m in recorded} == {"NVDA", "AMD"} and {m["T"] for m in recorded} <= {"q", "t", "l"}
    assert re.search(rb"recorded \d+ messages", stderr)
    await server.wait_for_sessions(0)  # the recorder closed its session on SIGTERM
