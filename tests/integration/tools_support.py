"""Shared by the tail/replay/diff tests: running tickwire commands, quote streams, and state snapshots."""

from __future__ import annotations

import asyncio
import random
import sys
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from consumers.tools.topic_range import RangeResolver
from producers.raw_events import encode_raw_event
from schemas.timestamps import NS_PER_SECOND, format_ns
from schemas.topics import QUOTES_RAW

ROOT_ARGS = [sys.executable, "-m", "tickwire"]


@dataclass(frozen=True)
class CommandResult:
    """A finished command: exit code and its output."""

    code: int
    out: str
    err: str


async def tickwire(*args: str, env: dict[str, str], timeout: float = 90.0) -> CommandResult:
    """Run ``tickwire ARGS`` to completion (failing the test after ``timeout`` seconds)."""
    proc = await asyncio.create_subprocess_exec(*ROOT_ARGS, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"tickwire {' '.join(args)} did not finish in {timeout}s") from None
    assert proc.returncode is not None
    return CommandResult(proc.returncode, out.decode(), err.decode())


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The end offset of each partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    await consumer.start()
    try:
        resolver = RangeResolver(consumer)
        ends = await resolver.end_offsets(await resolver.partitions(topic))
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def offsets_arg(offsets: dict[int, int]) -> str:
    """``{0: 5, 1: 7}`` -> ``"0:5,1:7"`` (the --from-offset / --to-offset form)."""
    return ",".join(f"{p}:{o}" for p, o in sorted(offsets.items()))


def quote(symbol: str, bid: float, ask: float, t_ns: int, received_ns: int | None = None) -> bytes:
    """A quotes.raw value exactly as the ingest writes it."""
    message = {"T": "q", "S": symbol, "bx": "V", "bp": bid, "bs": 3, "ax": "Q", "ap": ask, "as": 5,
               "c": ["R"], "z": "C", "t": format_ns(t_ns)}
    record = encode_raw_event(message, received_ns=received_ns if received_ns is not None else t_ns + 1_000_000)
    assert record is not None
    return record.value


@dataclass(frozen=True)
class QuoteStream:
    """Quotes of several symbols, in send order, with every kind of input the validator judges."""

    records: list[tuple[str, bytes]]
    malformed: dict[str, int]  # dead-lettered without a symbol, so not in per-symbol counts

    def per_symbol(self, symbol: str) -> int:
        """Records of ``symbol`` that end up in its per-symbol counts (malformed ones do not)."""
        return sum(1 for s, _ in self.records if s == symbol) - self.malformed.get(symbol, 0)


def mixed_quotes(symbols: list[str], per_symbol: int, t0_ns: int, seed: int = 7) -> QuoteStream:
    """Valid quotes on a random walk, plus malformed, crossed, out-of-order, stale and zero-priced ones."""
    rng = random.Random(seed)
    records: list[tuple[str, bytes]] = []
    malformed: dict[str, int] = {}
    mids = {s: 100.0 + 10 * i for i, s in enumerate(symbols)}
    for i in range(per_symbol):
        for symbol in symbols:
            t = t0_ns + i * NS_PER_SECOND // 10 + rng.randrange(NS_PER_SECOND // 20)
            mids[symbol] = round(mids[symbol] + rng.choice((-0.03, -0.01, 0.0, 0.01, 0.02)), 2)
            half = rng.choice((0.01, 0.02, 0.05))
            bid, ask = round(mids[symbol] - half, 2), round(mids[symbol] + half, 2)
            kind = rng.random()
            if kind < 0.06:
                value = f"not json {symbol} {i}".encode()
                malformed[symbol] = malformed.get(symbol, 0) + 1
            elif kind < 0.12:
                value = quote(symbol, ask, bid, t)  # crossed
            elif kind < 0.20:
                value = quote(symbol, bid, ask, t - 5 * NS_PER_SECOND)  # older than the latest price
            elif kind < 0.25:
                value = quote(symbol, bid, ask, t, received_ns=t + 600 * NS_PER_SECOND)  # stale
            elif kind < 0.28:
                value = quote(symbol, 0.0, ask, t)  # one-sided
            else:
                value = quote(symbol, bid, ask, t)
            records.append((symbol, value))
    return QuoteStream(records, malformed)


async def redis_snapshot(redis: Redis) -> dict[bytes, object]:
    """Every key of the database with its value (strings and hashes), to prove nothing changed."""
    snapshot: dict[bytes, object] = {}
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        snapshot[key] = await redis.hgetall(key) if kind == "hash" else await redis.get(key) if kind == "string" \
            else kind
    return snapshot


async def topics_high_water(bootstrap: str) -> dict[TopicPartition, int]:
    """The end offset of every partition of every topic on the broker."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    await consumer.start()
    try:
        resolver = RangeResolver(consumer)
        tps = [tp for topic in sorted(await consumer.topics()) for tp in await resolver.partitions(topic)]
        return await resolver.end_offsets(tps)
    finally:
        await consumer.stop()


async def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``offsets`` (partition -> offset) of ``topic`` for ``group``, as if it had consumed up to there."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = {TopicPartition(topic, p): o for p, o in offsets.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()


async def start_group_at_end(bootstrap: str, app_id: str, topics: list[str]) -> dict[TopicPartition, int]:
    """Commit the current end of ``topics`` for a new processor app id (its price stage's group and its P&L
    stage's, ``{app_id}-pnl``), so its workers skip the session's backlog and consume only what is sent from
    now on; returns those offsets."""
    ends = await _commit_ends(bootstrap, app_id, topics)
    await _commit_ends(bootstrap, f"{app_id}-pnl", topics)
    return ends


async def _commit_ends(bootstrap: str, group: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    await consumer.start()
    try:
        resolver = RangeResolver(consumer)
        tps = [tp for topic in topics for tp in await resolver.partitions(topic)]
        ends = await resolver.end_offsets(tps)
        consumer.assign(tps)  # commit needs the partitions assigned
        await consumer.commit(ends)
        return ends
    finally:
        await consumer.stop()


async def produce_quotes(bootstrap: str, symbol: str, values: list[bytes]) -> None:
    """Append quotes of one symbol to quotes.raw, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(QUOTES_RAW.name, value, key=symbol.encode())
    finally:
        await producer.stop()
