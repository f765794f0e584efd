"""Fuzz raw frames through the local feed into a real ingest and processor: random bytes, wrong types, huge
values, unicode symbols, NaN, missing fields. Nothing crashes, the socket stays, and every quote the ingest
publishes ends as a price or in quotes.rejected with a reason."""

from __future__ import annotations

import math
import random
import uuid
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest

from alpaca_feed.server import AlpacaFeedServer
from consumers.consistency import read_topic
from schemas.events import RejectReason
from schemas.timestamps import now_ns
from schemas.topics import PRICES, QUOTES_RAW, QUOTES_REJECTED
from tests.helpers import eventually, processor_process, read_topic_until, tickwire_env, unique_symbol
from tests.integration.test_ingest_harness import running_ingest

pytestmark = pytest.mark.integration

MESSAGES = 300
BYTE_FRAMES = 30
JUNK: list[Any] = [None, True, -1, 0, 2**63 - 1, -(2**63), 2**64 - 1, 1e308, -1e-308, math.nan, math.inf, -math.inf,
                   "", "x", "ÄÖÜ", "🚀", "AAPL", "1e999", "NaN", [], [1, "a"], {}, {"k": None}, b"\xff\x00",
                   "2026-11-21T20:00:00Z", "not a time", 150.25, 3]
FIELDS = ["T", "S", "t", "bp", "bs", "ap", "as", "bx", "ax", "c", "z"]


def fuzzed_messages(symbol: str, rng: random.Random) -> list[dict[str, Any]]:
    """Mostly quotes of ``symbol`` with 0-3 fields replaced by junk or removed; some with junk T or S."""
    out = []
    for _ in range(MESSAGES):
        t = msgpack.Timestamp.from_unix_nano(now_ns())
        bid = round(rng.uniform(1, 500), 2)
        message: dict[str, Any] = {"T": "q", "S": symbol, "bx": "V", "bp": bid, "bs": 1, "ax": "Q",
                                   "ap": round(bid + rng.uniform(0, 1), 2), "as": 2, "c": ["R"], "z": "C", "t": t}
        for field in rng.sample(FIELDS, rng.randint(0, 3)):
            if rng.random() < 0.3:
                message.pop(field, None)
            else:
                message[field] = rng.choice(JUNK)
        out.append(message)
    return out


def ingestible(message: dict[str, Any], symbol: str) -> bool:
    """What the ingest must publish to quotes.raw: a quote of the subscribed symbol."""
    return message.get("T") == "q" and message.get("S") == symbol


async def test_fuzzed_frames_through_feed_ingest_and_processor_end_as_prices_or_reasoned_dead_letters(
    kafka_bootstrap: str, redis_url: str, log_dir: Path
) -> None:
    rng = random.Random(20261121)
    symbol = unique_symbol("Z")
    messages = fuzzed_messages(symbol, rng)
    expected = sum(ingestible(m, symbol) for m in messages)
    feed = AlpacaFeedServer(rate_per_symbol=0)
    await feed.start()
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url,
                       TICKWIRE_PROCESSOR_APP_ID=f"fuzz-{uuid.uuid4().hex[:8]}")
    processor = processor_process(log_dir, env)
    try:
        await processor.start()
        async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol]) as ingest:
            await feed.wait_for_subscription("quotes", [symbol], timeout=30)
            (session,) = feed.sessions
            sent = 0
            while sent < len(messages):
                size = rng.randint(1, 5)
                session.send_raw(msgpack.packb(messages[sent:sent + size]), text=False)
                sent += size
                if rng.random() < BYTE_FRAMES / (MESSAGES / 3):
                    junk = rng.randbytes(rng.randint(1, 40))
                    if rng.random() < 0.2:  # a text frame: junk, but valid UTF-8 (else the socket closes with 1007)
                        session.send_raw(junk.decode("latin-1").encode(), text=True)
                    else:
                        session.send_raw(junk, text=False)
            raw = await read_topic_until(kafka_bootstrap, QUOTES_RAW.name,
                                         lambda vs: sum(v.get("S") == symbol for v in vs) >= expected, 60)
            status = ingest.status
            connections = feed.connection_count

        async def outcomes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
            key = {symbol.encode()}
            prices = [orjson.loads(v) for _, v in await read_topic(kafka_bootstrap, PRICES.name, key) if v]
            rejected = [orjson.loads(v) for _, v in await read_topic(kafka_bootstrap, QUOTES_REJECTED.name, key) if v]
            mine_p = [p for p in prices if p.get("symbol") == symbol]
            mine_r = [r for r in rejected if _mine(r, symbol)]
            return (mine_p, mine_r) if len(mine_p) + len(mine_r) >= expected else None

        prices, rejected = await eventually(outcomes, 90, "every published quote priced or dead-lettered", processor)
        alive = processor.running
    finally:
        await processor.stop(timeout=15)
        await feed.stop()

    published = [v for v in raw if v.get("S") == symbol]
    reasons = sorted({r["reason"] for r in rejected})
    print(f"frame fuzz: {MESSAGES} messages + random-byte frames sent; ingest published {len(published)}, "
          f"malformed {status.malformed}; processor priced {len(prices)}, dead-lettered {len(rejected)} {reasons}")
    assert alive and connections == 1 and status.connected  # no crash, no reconnect caused by junk
    assert len(published) == expected
    assert len(prices) + len(rejected) == expected
    assert all(r["reason"] in set(RejectReason) and r["detail"] for r in rejected)


def _mine(record: dict[str, Any], symbol: str) -> bool:
    payload = record.get("payload")
    return record.get("symbol") == symbol or (isinstance(payload, dict) and payload.get("S") == symbol)
