"""The whole pipeline: real alpaca-py -> local feed -> broker -> Faust worker -> Redis, via `tickwire run`."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from alpaca_feed.server import AlpacaFeedServer
from deploy.embedded.process import ManagedProcess
from schemas.timestamps import NS_PER_SECOND, format_ns, now_ns
from schemas.topics import BARS_RAW, QUOTES_RAW, QUOTES_REJECTED, TRADES_RAW, price_channel, price_key
from tests.helpers import (
    alive,
    command_line,
    descendants,
    eventually,
    read_topic_until,
    tickwire_env,
    tickwire_run_process,
    unique_symbol,
)
from tests.integration.test_price_processor import collect_messages

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def quote(symbol: str, bid: float, ask: float, t_ns: int) -> dict[str, object]:
    return {"T": "q", "S": symbol, "bx": "V", "bp": bid, "bs": 2, "ax": "Q", "ap": ask, "as": 4,
            "c": ["R"], "z": "C", "t": t_ns}


async def stop_with_sigint(run: ManagedProcess, timeout: float = 10.0) -> tuple[int | None, float]:
    """Ctrl-C as a terminal sends it (to the launcher); returns (exit code or None, seconds taken)."""
    assert run.proc is not None
    started = time.monotonic()
    os.kill(run.proc.pid, signal.SIGINT)
    try:
        code: int | None = await asyncio.wait_for(run.proc.wait(), timeout)
    except TimeoutError:
        code = None
    return code, time.monotonic() - started


async def test_run_given_external_servers_streams_known_quotes_into_redis_and_starts_no_servers(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    """Test that known quotes from the feed reach Redis exactly, bad ones the DLQ, and nothing else starts."""
    # Arrange
    symbol = unique_symbol("E")
    feed = AlpacaFeedServer(rate_per_symbol=0)
    await feed.start()
    env = tickwire_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url, ALPACA_STREAM_URL=feed.url(),
        TICKWIRE_SYMBOLS=symbol, TICKWIRE_PROCESSOR_APP_ID=f"e2e-{uuid.uuid4().hex[:8]}",
        TICKWIRE_RUN_DIR=str(tmp_path / "run"),
    )
    run = tickwire_run_process(tmp_path, env)
    pubsub = redis.pubsub()
    await pubsub.subscribe(price_channel(symbol))
    t0 = now_ns() // NS_PER_SECOND * NS_PER_SECOND + 123_456_789
    try:
        await run.start()
        await feed.wait_for_subscription("quotes", [symbol], timeout=60)
        children = [command_line(pid) for pid in descendants(run.pid)]  # type: ignore[arg-type]

        # Act
        feed.inject([quote(symbol, 150.25, 150.27, t0)])
        feed.inject([quote(symbol, 151.00, 150.90, t0 + NS_PER_SECOND)])  # crossed
        feed.inject([quote(symbol, 149.00, 149.02, t0 - NS_PER_SECOND)])  # older than the latest
        feed.inject([
            {"T": "t", "S": symbol, "i": 7, "x": "V", "p": 150.26, "s": 100, "c": ["@"], "z": "C", "t": t0 + 5},
            {"T": "b", "S": symbol, "o": 150.2, "h": 150.3, "l": 150.1, "c": 150.26, "v": 100, "n": 1,
             "vw": 150.26, "t": t0 // (60 * NS_PER_SECOND) * 60 * NS_PER_SECOND},
            quote(symbol, 150.30, 150.34, t0 + 2 * NS_PER_SECOND),
        ])
        updates = await collect_messages(pubsub, 2, 90, run)
        stored = orjson.loads(await redis.get(price_key(symbol)) or b"null")
        rejected = await read_topic_until(kafka_bootstrap, QUOTES_REJECTED.name,
                                          lambda vs: sum(v.get("symbol") == symbol for v in vs) >= 2, 30)
        raw_quotes = await read_topic_until(kafka_bootstrap, QUOTES_RAW.name,
                                            lambda vs: sum(v.get("S") == symbol for v in vs) >= 4, 30)
        raw_trades = await read_topic_until(kafka_bootstrap, TRADES_RAW.name,
                                            lambda vs: any(v.get("S") == symbol for v in vs), 30)
        raw_bars = await read_topic_until(kafka_bootstrap, BARS_RAW.name,
                                          lambda vs: any(v.get("S") == symbol for v in vs), 30)
        output = run.log_path.read_text()
    finally:
        await pubsub.aclose()
        await run.stop(timeout=10)
        await feed.stop()

    # Assert
    assert updates == [
        {"event_type": "price.updated", "symbol": symbol, "price": "150.26", "bid": "150.25", "ask": "150.27",
         "timestamp": format_ns(t0)},
        {"event_type": "price.updated", "symbol": symbol, "price": "150.32", "bid": "150.3", "ask": "150.34",
         "timestamp": format_ns(t0 + 2 * NS_PER_SECOND)},
    ], output
    assert stored == {"symbol": symbol, "bid": "150.3", "ask": "150.34", "mid": "150.32", "spread": "0.04",
                      "spread_bps": "2.6610", "bid_size": 2, "ask_size": 4,
                      "timestamp": format_ns(t0 + 2 * NS_PER_SECOND), "exchange": "V"}
    assert [r["reason"] for r in rejected if r.get("symbol") == symbol] == ["crossed_market", "out_of_order"]
    mine = [q for q in raw_quotes if q["S"] == symbol]
    assert [q["t"] for q in mine] == [format_ns(t) for t in
                                      (t0, t0 + NS_PER_SECOND, t0 - NS_PER_SECOND, t0 + 2 * NS_PER_SECOND)]
    assert mine[0]["t"].endswith(".123456789Z") and mine[0]["bp"] == 150.25 and "received_at" in mine[0]
    assert [t["p"] for t in raw_trades if t["S"] == symbol] == [150.26]
    assert [b["c"] for b in raw_bars if b["S"] == symbol] == [150.26]
    assert f"from {feed.url()}" in output
    started = " ".join(children)
    assert "tickwire processor" in started and "tickwire ingest" in started
    for server in ("kafka.Kafka", "redis-server", "alpaca_feed"):
        assert server not in started, f"tickwire run started {server} although one was configured: {children}"


async def test_run_given_nothing_configured_shows_prices_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """Test the quick start: embedded broker, Redis and feed; prices within 30 s; Ctrl-C leaves nothing."""
    # Arrange
    env = tickwire_env(TICKWIRE_RUN_DIR=str(tmp_path / "run"))
    run = tickwire_run_process(tmp_path, env)
    price_line = re.compile(r"prices AAPL mid=\d+\.\d+ spread=\d+\.\d+ n=\d+ \| MSFT mid=.* \| GOOGL mid=")

    # Act
    await run.start()
    started = time.monotonic()
    try:
        await eventually(lambda: _found(price_line, run.log_path), 60, "a price line from `tickwire run`", run)
        first_prices_s = time.monotonic() - started
        family = descendants(run.pid)  # type: ignore[arg-type]
        commands = " ".join(command_line(pid) for pid in family)
        code, stop_s = await stop_with_sigint(run)
    finally:
        await run.stop()

    # Assert
    print(f"first prices after {first_prices_s:.1f}s; stopped in {stop_s:.1f}s")
    for component in ("kafka.Kafka", "redis-server", "alpaca_feed", "tickwire processor", "tickwire ingest"):
        assert component in commands, f"{component} not started: {commands}"
    assert code == 0, run.tail(40)
    assert stop_s < 10
    assert alive(family) == [], f"left running: {[command_line(p) for p in alive(family)]}"
    assert "tickwire: stopped" in run.log_path.read_text()


async def _found(pattern: re.Pattern[str], path: Path) -> bool:
    return path.exists() and pattern.search(path.read_text()) is not None
