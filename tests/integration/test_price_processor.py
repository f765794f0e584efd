"""The price processor as a real Faust worker: real broker in, real Redis out."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from redis.asyncio import Redis

from deploy.embedded.process import ManagedProcess
from producers.raw_events import encode_raw_event
from schemas.timestamps import NS_PER_SECOND, format_ns, now_ns
from schemas.topics import PROCESSOR_STATS_KEY, QUOTES_RAW, QUOTES_REJECTED, price_channel, price_key
from tests.helpers import processor_process, read_topic_until, tickwire_env, unique_symbol
from tests.integration.tools_support import produce_quotes

pytestmark = pytest.mark.integration


def raw_quote(symbol: str, bid: float, ask: float, t_ns: int) -> bytes:
    """A quotes.raw value exactly as the ingest writes it."""
    message = {"T": "q", "S": symbol, "bx": "V", "bp": bid, "bs": 3, "ax": "Q", "ap": ask, "as": 5,
               "c": ["R"], "z": "C", "t": msgpack.Timestamp.from_unix_nano(t_ns)}
    record = encode_raw_event(message, received_ns=t_ns + 1_000_000)
    assert record is not None
    return record.value


async def collect_messages(pubsub: Any, count: int, timeout: float, *alive: ManagedProcess) -> list[Any]:
    """Wait (with a deadline) for ``count`` pub/sub messages; stop early if a process died."""
    received: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(received) < count and time.monotonic() < deadline and all(p.running for p in alive):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            received.append(orjson.loads(message["data"]))
    return received


async def test_processor_given_mixed_quotes_projects_valid_ones_and_dead_letters_the_rest(
    kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path
) -> None:
    """Test that accepted quotes reach Redis and pub/sub once each, and every bad one reaches the DLQ."""
    # Arrange
    symbol = unique_symbol()
    t0 = now_ns()
    marker = f"garbage-{uuid.uuid4().hex}"
    values = [
        raw_quote(symbol, 150.25, 150.27, t0),  # accepted: mid 150.26
        raw_quote(symbol, 151.00, 150.90, t0 + 1 * NS_PER_SECOND),  # crossed
        raw_quote(symbol, 149.00, 149.02, t0 - 1 * NS_PER_SECOND),  # older than the latest: out of order
        marker.encode(),  # not JSON
        raw_quote(symbol, 150.30, 150.34, t0 + 2 * NS_PER_SECOND),  # accepted: mid 150.32
        raw_quote(symbol, 150.30, 150.34, t0 + 2 * NS_PER_SECOND),  # redelivery: no second publish
        raw_quote(symbol, 150.31, 150.33, t0 + 3 * NS_PER_SECOND),  # accepted: proves the one before was seen
    ]
    pubsub = redis.pubsub()
    await pubsub.subscribe(price_channel(symbol))
    await produce_quotes(kafka_bootstrap, symbol, values)
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url,
                       TICKWIRE_PROCESSOR_APP_ID=f"test-processor-{uuid.uuid4().hex[:8]}")
    worker = processor_process(log_dir, env)

    # Act
    await worker.start()
    try:
        updates = await collect_messages(pubsub, 3, 60, worker)
        rejected = await read_topic_until(
            kafka_bootstrap, QUOTES_REJECTED.name,
            lambda vs: sum(v.get("symbol") == symbol or v.get("payload") == marker for v in vs) >= 3,
            timeout=30,
        )
        stored = await redis.get(price_key(symbol))
        ttl = await redis.ttl(price_key(symbol))
        stats = await redis.hgetall(PROCESSOR_STATS_KEY)
    finally:
        await pubsub.aclose()
        assert await worker.stop() is not None

    # Assert
    assert updates == [
        {"event_type": "price.updated", "symbol": symbol, "price": "150.26", "bid": "150.25", "ask": "150.27",
         "timestamp": format_ns(t0)},
        {"event_type": "price.updated", "symbol": symbol, "price": "150.32", "bid": "150.3", "ask": "150.34",
         "timestamp": format_ns(t0 + 2 * NS_PER_SECOND)},
        {"event_type": "price.updated", "symbol": symbol, "price": "150.32", "bid": "150.31", "ask": "150.33",
         "timestamp": format_ns(t0 + 3 * NS_PER_SECOND)},
    ], f"processor log:\n{worker.tail(40)}"
    assert orjson.loads(stored) == {
        "symbol": symbol, "bid": "150.31", "ask": "150.33", "mid": "150.32", "spread": "0.02",
        "spread_bps": "1.3305", "bid_size": 3, "ask_size": 5, "timestamp": format_ns(t0 + 3 * NS_PER_SECOND),
        "exchange": "V",
    }
    assert 0 < ttl <= 300
    mine = [v for v in rejected if v.get("symbol") == symbol or v.get("payload") == marker]
    assert [v["reason"] for v in mine] == ["crossed_market", "out_of_order", "malformed"]
    assert mine[0]["payload"]["bp"] == 151.0 and mine[0]["source_topic"] == QUOTES_RAW.name
    assert "ask 150.9 < bid 151.0" in mine[0]["detail"]
    assert int(stats[b"published"]) >= 3
