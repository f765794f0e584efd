"""LatencyProbe: times sampled quotes from exchange time to Kafka, to Redis and to P&L, as a client sees them.

It listens where a user would: Redis pub/sub for ``price.updated.{SYMBOL}`` of the sampled symbols and
``pnl.updated.{account}`` of the account holding them, and ``quotes.raw`` for the Kafka hop (the record
timestamp, milliseconds). Every sample is (exchange time, latency) in ns; the step runner slices them by
exchange time, so each step is judged on the quotes the feed generated during it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable

import orjson
from aiokafka import AIOKafkaConsumer
from redis.asyncio import Redis

from processors.latency import timestamp_ns
from schemas.topics import QUOTES_RAW, pnl_channel, price_channel

Sample = tuple[int, int]  # (exchange time ns, latency ns)
METRICS = ("tick_to_kafka", "tick_to_redis", "tick_to_pnl")


class LatencyProbe:
    """Collects latency samples until stopped; ``samples[metric]`` grows in arrival order."""

    def __init__(self, redis_url: str, symbols: Iterable[str], pnl_account: str | None = None,
                 kafka_bootstrap: str | None = None) -> None:
        self.redis_url = redis_url
        self.symbols = sorted(symbols)
        self.pnl_account = pnl_account
        self.kafka_bootstrap = kafka_bootstrap
        self.samples: dict[str, list[Sample]] = {metric: [] for metric in METRICS}
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: Redis | None = None

    async def start(self) -> None:
        """Subscribe (and start reading ``quotes.raw``); returns once subscribed."""
        self._redis = Redis.from_url(self.redis_url)
        pubsub = self._redis.pubsub()
        channels = [price_channel(s) for s in self.symbols]
        if self.pnl_account:
            channels.append(pnl_channel(self.pnl_account))
        await pubsub.subscribe(*channels)
        self._tasks.append(asyncio.create_task(self._read_pubsub(pubsub), name="probe-redis"))
        if self.kafka_bootstrap:
            consumer = AIOKafkaConsumer(QUOTES_RAW.name, bootstrap_servers=self.kafka_bootstrap, group_id=None,
                                        auto_offset_reset="earliest", enable_auto_commit=False)
            await consumer.start()
            self._tasks.append(asyncio.create_task(self._read_kafka(consumer), name="probe-kafka"))

    async def stop(self) -> None:
        """Stop listening."""
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()

    def window(self, metric: str, start_ns: int, end_ns: int) -> list[int]:
        """Latencies (ns) of the samples whose exchange time lies in [start_ns, end_ns)."""
        return [latency for tick, latency in self.samples[metric] if start_ns <= tick < end_ns]

    async def _read_pubsub(self, pubsub) -> None:  # type: ignore[no-untyped-def]
        prices, pnl = self.samples["tick_to_redis"], self.samples["tick_to_pnl"]
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                arrived = time.time_ns()
                data = orjson.loads(message["data"])
                if message["channel"].startswith(b"pnl."):
                    stamp = data.get("price_timestamp")
                    if stamp and data.get("price_source") == "real-time":
                        tick = timestamp_ns(stamp)
                        pnl.append((tick, arrived - tick))
                else:
                    tick = timestamp_ns(data["timestamp"])
                    prices.append((tick, arrived - tick))
        finally:
            await pubsub.aclose()

    async def _read_kafka(self, consumer: AIOKafkaConsumer) -> None:
        wanted = {s.encode() for s in self.symbols}
        out = self.samples["tick_to_kafka"]
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                for records in batches.values():
                    for record in records:
                        if record.key in wanted:
                            tick = timestamp_ns(orjson.loads(record.value)["t"])
                            out.append((tick, record.timestamp * 1_000_000 - tick))
        finally:
            await consumer.stop()
