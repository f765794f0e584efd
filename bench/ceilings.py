"""Raw ceilings on this machine: the feed alone, broker produce alone, Redis pipelined writes alone.

They bound what any design can reach here, so the designs' figures can be read as a share of the limit.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import msgpack
import orjson
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from bench.config import BenchConfig
from bench.stack import BenchStack
from deploy.embedded import EmbeddedBroker
from schemas.timestamps import format_ns, now_ns
from schemas.topics import TopicSpec
from tickwire.topic_admin import ensure_topics

FEED_ASK_PER_S = 200_000  # more than the feed can make: it runs flat out
FEED_WINDOW_S = 4.0
PRODUCE_RECORDS = 40_000
REDIS_MESSAGES = 40_000
REDIS_PIPELINE = 100
CEILING_TOPIC = TopicSpec("bench.ceiling", "symbol", bytes, "the broker's produce ceiling")


def sample_quote(symbol: str) -> bytes:
    """A quotes.raw value as the ingest writes it (about 230 bytes)."""
    stamp = format_ns(now_ns())
    return orjson.dumps({"T": "q", "S": symbol, "bx": "V", "bp": 123.45, "bs": 3, "ax": "Q", "ap": 123.47, "as": 2,
                         "c": ["R"], "z": "C", "t": stamp, "received_at": stamp})


async def feed_alone(stack: BenchStack, symbols: list[str]) -> dict[str, Any]:
    """The feed flat out to a bare WebSocket client that only counts quotes (msgpack, like alpaca-py)."""
    received = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(
        stack.feed_url, headers={"Content-Type": "application/msgpack"}, max_msg_size=0
    ) as ws:
        await ws.receive()  # connected
        await ws.send_bytes(msgpack.packb({"action": "auth", "key": "bench", "secret": "bench"}))
        await ws.receive()  # authenticated
        await ws.send_bytes(msgpack.packb({"action": "subscribe", "quotes": symbols}))
        await stack.set_rate(FEED_ASK_PER_S)
        before = await stack.counts()
        deadline = time.monotonic() + FEED_WINDOW_S
        while time.monotonic() < deadline:
            message = await ws.receive(timeout=1.0)
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            received += sum(1 for item in msgpack.unpackb(message.data) if item.get("T") == "q")
        after = await stack.counts()
        await stack.set_rate(0)
    span = after.at - before.at
    return {"generated_per_s": round((after.sent - before.sent) / span), "received_per_s": round(received / span)}


async def produce_alone(bootstrap: str, records: int, **options: Any) -> float:
    """Records/s of one aiokafka producer sending ``records`` quotes pipelined (acks=all, as the ingest)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **options)
    await producer.start()
    try:
        values = [(f"S{i % 100:03d}", sample_quote(f"S{i % 100:03d}")) for i in range(records)]
        began = time.perf_counter()
        futures = [await producer.send(CEILING_TOPIC.name, value, key=key.encode()) for key, value in values]
        await asyncio.gather(*futures)
        return round(records / (time.perf_counter() - began))
    finally:
        await producer.stop()


async def redis_alone(url: str) -> float:
    """Messages/s of SET key value EX + PUBLISH, pipelined ``REDIS_PIPELINE`` messages per round trip."""
    redis = Redis.from_url(url)
    value = sample_quote("S000")
    try:
        began = time.perf_counter()
        for start in range(0, REDIS_MESSAGES, REDIS_PIPELINE):
            pipe = redis.pipeline(transaction=False)
            for i in range(start, start + REDIS_PIPELINE):
                pipe.set(f"bench:price:S{i % 100:03d}", value, ex=300)
                pipe.publish(f"bench.price.updated.S{i % 100:03d}", value)
            await pipe.execute()
        return round(REDIS_MESSAGES / (time.perf_counter() - began))
    finally:
        await redis.aclose()


async def measure_ceilings(cfg: BenchConfig) -> dict[str, Any]:
    """Every ceiling, each on fresh servers."""
    out: dict[str, Any] = {}
    async with BenchStack(cfg, "ceilings") as stack:
        out["feed"] = await feed_alone(stack, cfg.symbol_names())
        out["redis_set_publish_pipelined_per_s"] = await redis_alone(stack.redis_url)
        async with EmbeddedBroker(stack.broker_dir, stack.log_dir) as broker:
            await ensure_topics(broker.bootstrap, 4, [CEILING_TOPIC])
            out["broker_produce_per_s"] = await produce_alone(broker.bootstrap, PRODUCE_RECORDS, linger_ms=1)
    return out
