"""Two price processor workers in one consumer group share the partitions; a killed one's move to the other."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner
from redis.asyncio import Redis

from schemas.timestamps import NS_PER_SECOND, now_ns
from schemas.topics import ALL_TOPICS, PRICES, QUOTES_RAW, price_key, symbol_stats_key
from tests.helpers import eventually, processor_process, read_topic_until, tickwire_env, unique_symbol
from tests.integration.tools_support import end_offsets, quote, start_group_at_end

pytestmark = pytest.mark.integration


def symbols_covering_partitions(partitions: list[int], per_partition: int = 2) -> dict[str, int]:
    """Fresh symbols, ``per_partition`` in each partition of quotes.raw (the producer's murmur2 partitioning)."""
    chosen: dict[str, int] = {}
    while len(chosen) < per_partition * len(partitions):
        symbol = unique_symbol("W")
        partition = DefaultPartitioner()(symbol.encode(), partitions, partitions)
        if sum(p == partition for p in chosen.values()) < per_partition:
            chosen[symbol] = partition
    return chosen


async def send_round(bootstrap: str, symbols: list[str], t_ns: int) -> None:
    """One quote per symbol, exchange time ``t_ns`` (bid encodes nothing; the time tells rounds apart)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for symbol in symbols:
            await producer.send_and_wait(QUOTES_RAW.name, quote(symbol, 20.0, 20.02, t_ns), key=symbol.encode())
    finally:
        await producer.stop()


async def priced_at(redis: Redis, symbols: list[str], t_ns: int) -> set[str]:
    """The symbols whose latest price in this database is the quote of time ``t_ns``."""
    values = await redis.mget([price_key(s) for s in symbols])
    stamp = orjson.loads(quote("X", 1, 2, t_ns))["t"]
    return {s for s, v in zip(symbols, values, strict=True) if v and orjson.loads(v)["timestamp"] == stamp}


async def test_two_workers_given_one_group_split_partitions_and_survive_a_sigkill(
    kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path
) -> None:
    """Test that two workers each take some partitions (every symbol priced by exactly one), and that after
    SIGKILL of one the other takes its partitions, with their latest-price table, and prices its symbols."""
    # Arrange: each worker projects into its own Redis database, so where a price lands says who priced it
    all_partitions = sorted(await end_offsets(kafka_bootstrap, QUOTES_RAW.name))
    by_symbol = symbols_covering_partitions(all_partitions)
    symbols = sorted(by_symbol)
    db_a = int(redis_url.rsplit("/", 1)[1])
    url_b = redis_url.rsplit("/", 1)[0] + f"/{db_a % 15 + 1}"
    redis_b = Redis.from_url(url_b)
    await redis_b.flushdb()
    group = f"test-scale-{uuid.uuid4().hex[:8]}"
    workers = {
        name: processor_process(log_dir, tickwire_env(  # exactly once fences a worker of the same instance name
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=url, TICKWIRE_PROCESSOR_APP_ID=group,
            TICKWIRE_PROCESSOR_INSTANCE=name))
        for name, url in (("a", redis_url), ("b", url_b))
    }
    await start_group_at_end(kafka_bootstrap, group, [t.name for t in ALL_TOPICS])  # skip the session's backlog
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()

    async def members() -> int:
        description = (await admin.describe_consumer_groups([group]))[0].groups[0]
        return len(description[5]) if description[2] == "Stable" else 0  # (error, group, state, ..., members)

    async def two_members() -> bool:
        return await members() == 2

    async def one_member() -> bool:
        return await members() == 1

    try:
        for worker in workers.values():
            await worker.start()
        await eventually(two_members, 60, "both workers to join the group", *workers.values())
        round_1 = now_ns()
        await send_round(kafka_bootstrap, symbols, round_1)

        async def all_priced() -> tuple[set[str], set[str]] | None:
            in_a, in_b = await priced_at(redis, symbols, round_1), await priced_at(redis_b, symbols, round_1)
            return (in_a, in_b) if in_a | in_b == set(symbols) else None

        # Act 1: both workers price
        in_a, in_b = await eventually(all_priced, 60, "every symbol to be priced", *workers.values())

        # Act 2: once b has committed round 1, kill -9 it; then send b's symbols a quote older than round 1
        # (only a table restored from b's changelog knows it is out of order), then a new round
        ends = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)

        offsets_reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
        await offsets_reader.start()

        async def round_1_committed() -> bool:
            committed = [await offsets_reader.committed(TopicPartition(QUOTES_RAW.name, p)) for p in all_partitions]
            return all((offset or -1) >= ends[p] for p, offset in zip(all_partitions, committed, strict=True))

        try:
            await eventually(round_1_committed, 30, "the workers to commit round 1", *workers.values())
        finally:
            await offsets_reader.stop()
        os.kill(workers["b"].pid, signal.SIGKILL)  # type: ignore[arg-type]
        killed = time.monotonic()
        await send_round(kafka_bootstrap, sorted(in_b), round_1 - NS_PER_SECOND)
        round_2 = now_ns()
        await send_round(kafka_bootstrap, symbols, round_2)

        async def all_repriced_by_a() -> bool:
            return await priced_at(redis, symbols, round_2) == set(symbols)

        await eventually(all_repriced_by_a, 60, "worker a to take over b's partitions", workers["a"])
        failover_s = time.monotonic() - killed
        await eventually(one_member, 30, "the group to have one member", workers["a"])
        counts_in_a = {s: await redis.hgetall(symbol_stats_key(s)) for s in sorted(in_b)}
        stamp = orjson.loads(quote("X", 1, 2, round_2))["t"]
        prices = await read_topic_until(
            kafka_bootstrap, PRICES.name,
            lambda vs: {v["symbol"] for v in vs if v.get("timestamp") == stamp} >= set(in_b), 30)
    finally:
        await admin.close()
        for worker in workers.values():
            await worker.stop()
        await redis_b.flushdb()
        await redis_b.aclose()

    # Assert: a disjoint split covering every partition, then a took everything
    partitions_a = {by_symbol[s] for s in in_a}
    partitions_b = {by_symbol[s] for s in in_b}
    assert in_a & in_b == set(), f"priced by both: {in_a & in_b}"
    assert partitions_a and partitions_b, f"one worker got nothing: a={partitions_a} b={partitions_b}"
    assert partitions_a.isdisjoint(partitions_b) and partitions_a | partitions_b == set(all_partitions)
    # a rejected the older quote: its table was restored from b's changelog. Counts are at least (not
    # exactly) one: delivery is at-least-once, and the rebalances may hand a a record twice.
    assert all(int(c.get(b"rejected.out_of_order", 0)) >= 1 for c in counts_in_a.values()), counts_in_a
    older = orjson.loads(quote("X", 1, 2, round_1 - NS_PER_SECOND))["t"]
    assert [p for p in prices if p["symbol"] in in_b and p["timestamp"] == older] == [], "an older quote was priced"
    print(f"partitions a={sorted(partitions_a)} b={sorted(partitions_b)}; SIGKILL -> b's symbols repriced by a "
          f"in {failover_s:.1f}s")
    assert failover_s < 45
