"""The P&L processor as a real Faust worker: positions and quotes in, exact P&L in Redis and Kafka out."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from pathlib import Path

import msgpack
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from producers.raw_events import encode_raw_event
from schemas.timestamps import NS_PER_SECOND, now_ns
from schemas.topics import (
    DAILY_BARS_RAW,
    PNL,
    POSITIONS,
    POSITIONS_REJECTED,
    QUOTES_RAW,
    SUBSCRIPTIONS,
    pnl_channel,
    pnl_key,
    pnl_total_key,
    position_key,
    positions_key,
)
from tests.helpers import processor_process, read_topic_until, tickwire_env, unique_symbol

pytestmark = pytest.mark.integration


def quote_value(symbol: str, bid: float, ask: float, t_ns: int) -> bytes:
    message = {"T": "q", "S": symbol, "bx": "V", "bp": bid, "bs": 1, "ax": "V", "ap": ask, "as": 1,
               "c": ["R"], "z": "C", "t": msgpack.Timestamp.from_unix_nano(t_ns)}
    record = encode_raw_event(message, t_ns)
    assert record is not None
    return record.value


def daily_bar_value(symbol: str, close: float, t_ns: int) -> bytes:
    message = {"T": "d", "S": symbol, "o": close, "h": close, "l": close, "c": close, "v": 1000, "n": 10,
               "vw": close, "t": msgpack.Timestamp.from_unix_nano(t_ns)}
    record = encode_raw_event(message, t_ns)
    assert record is not None and record.topic == DAILY_BARS_RAW.name
    return record.value


def position_value(account: str, symbol: str, qty: str, avg: str) -> bytes:
    return orjson.dumps({"account": account, "symbol": symbol, "qty": qty, "avg_entry_price": avg})


async def next_update(pubsub, wanted: dict, worker, timeout: float = 90) -> dict:  # type: ignore[no-untyped-def]
    """The next pnl.updated message whose fields include ``wanted`` (earlier others are skipped)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline and worker.running:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is None:
            continue
        update = orjson.loads(message["data"])
        seen.append(update)
        if all(update.get(k) == v for k, v in wanted.items()):
            return update
    raise AssertionError(f"no pnl update with {wanted} within {timeout}s; saw {seen}\n{worker.tail(30)}")


async def test_pnl_processor_given_longs_shorts_closes_and_reopens_values_every_position_to_the_cent(
    kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path
) -> None:
    """Test P&L for price-before-position, position-before-price, close fallback, close and re-open."""
    # Arrange
    account = f"acct-{uuid.uuid4().hex[:8]}"
    long_sym, short_sym, closing_sym = unique_symbol("L"), unique_symbol("S"), unique_symbol("C")
    t0 = now_ns()
    pubsub = redis.pubsub()
    await pubsub.subscribe(pnl_channel(account))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    worker = processor_process(log_dir, tickwire_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url, TICKWIRE_UNSUBSCRIBE_GRACE_SECONDS="5",
        TICKWIRE_PROCESSOR_APP_ID=f"test-pnl-{uuid.uuid4().hex[:8]}"))

    async def send(topic: str, key: str, value: bytes | None) -> None:
        await producer.send_and_wait(topic, value, key=key.encode())

    async def position(symbol: str, qty: str, avg: str) -> None:
        await send(POSITIONS.name, position_key(account, symbol), position_value(account, symbol, qty, avg))

    def wanted(symbol: str, qty: str, pnl: str | None, source: str) -> dict:
        return {"symbol": symbol, "qty": qty, "unrealized_pnl": pnl, "price_source": source}

    # Act
    await worker.start()
    try:
        # Price before position: a long marked at the mid.
        await send(QUOTES_RAW.name, long_sym, quote_value(long_sym, 151.99, 152.01, t0))
        await position(long_sym, "100", "150.00")
        first = await next_update(pubsub, wanted(long_sym, "100", "200.00", "real-time"), worker)
        # Position before price: a short, unvalued until its quote arrives.
        await position(short_sym, "-50", "100")
        await next_update(pubsub, wanted(short_sym, "-50", None, "none"), worker)
        await send(QUOTES_RAW.name, short_sym, quote_value(short_sym, 99.25, 99.26, t0 + 1))
        short = await next_update(pubsub, wanted(short_sym, "-50", "37.25", "real-time"), worker)  # (99.255-100)*-50
        # No live price at all: the previous close marks it.
        await send(DAILY_BARS_RAW.name, closing_sym, daily_bar_value(closing_sym, 20.0, t0 - 86_400 * NS_PER_SECOND))
        await position(closing_sym, "10", "19.5")
        await next_update(pubsub, wanted(closing_sym, "10", "5.00", "closing"), worker)
        # Close the long and re-open it smaller; close the short with a tombstone; one unusable record.
        await position(long_sym, "0", "150.00")
        await next_update(pubsub, {"symbol": long_sym, "qty": "0"}, worker)
        await position(long_sym, "10", "151")
        await next_update(pubsub, wanted(long_sym, "10", "10.00", "real-time"), worker)
        await send(POSITIONS.name, position_key(account, short_sym), None)
        last = await next_update(pubsub, {"symbol": short_sym, "qty": "0"}, worker)
        await send(POSITIONS.name, position_key(account, "BAD"), b'{"qty": "ten", "avg_entry_price": "1"}')

        total = orjson.loads(await redis.get(pnl_total_key(account)) or b"{}")
        pnl = {k.decode(): orjson.loads(v) for k, v in (await redis.hgetall(pnl_key(account))).items()}
        positions = {k.decode(): orjson.loads(v) for k, v in (await redis.hgetall(positions_key(account))).items()}
        events = await read_topic_until(kafka_bootstrap, PNL.name,
                                        lambda vs: sum(v["account"] == account for v in vs) >= 7, 30)
        requests = await read_topic_until(
            kafka_bootstrap, SUBSCRIPTIONS.name,
            lambda vs: any(v["symbol"] == short_sym and v["action"] == "unsubscribe" for v in vs), 30)
        rejected = await read_topic_until(kafka_bootstrap, POSITIONS_REJECTED.name,
                                          lambda vs: any(str(v.get("payload", {}).get("qty")) == "ten"
                                                         for v in vs if isinstance(v.get("payload"), dict)), 30)
    finally:
        await producer.stop()
        await pubsub.aclose()
        await worker.stop()

    # Assert
    assert first["total_unrealized"] == "200.00" and short["total_unrealized"] == "237.25"
    assert last["total_unrealized"] == "15.00"
    assert (total["account"], total["total_unrealized"], total["positions"]) == (account, "15.00", 2)
    assert set(pnl) == {long_sym, closing_sym} == set(positions)
    assert (pnl[long_sym]["unrealized_pnl"], pnl[long_sym]["mark_price"], pnl[long_sym]["price_source"]) == (
        "10.00", "152.00", "real-time")
    assert positions[long_sym]["qty"] == "10" and positions[long_sym]["avg_entry_price"] == "151"
    assert (pnl[closing_sym]["unrealized_pnl"], pnl[closing_sym]["price_source"]) == ("5.00", "closing")
    assert Decimal(total["total_unrealized"]) == sum(Decimal(p["unrealized_pnl"]) for p in pnl.values())
    mine = [(e["symbol"], e["qty"], e["unrealized_pnl"]) for e in events if e["account"] == account]
    # The pnl topic is keyed by account:symbol, so order holds per position (not across partitions).
    # The quote and the position travel different paths, so the position may be valued once before its mark.
    assert [e for e in mine if e[0] == long_sym and e[2] is not None] == [
        (long_sym, "100", "200.00"), (long_sym, "0", "0.00"), (long_sym, "10", "10.00")]
    assert [e for e in mine if e[0] == short_sym] == [
        (short_sym, "-50", None), (short_sym, "-50", "37.25"), (short_sym, "0", "0.00")]
    mine_requests = [(r["symbol"], r["action"]) for r in requests if r["symbol"] in (long_sym, short_sym, closing_sym)]
    assert {(s, "subscribe") for s in (long_sym, short_sym, closing_sym)} <= set(mine_requests)
    assert (short_sym, "unsubscribe") in mine_requests and (long_sym, "unsubscribe") not in mine_requests
    assert all(r["source"] == "positions" for r in requests if r["symbol"] in (long_sym, short_sym, closing_sym))
    assert any("qty is not a decimal number" in r["detail"] for r in rejected)
