"""tickwire tail against a real broker: from an offset or a time, live, filtered, as JSON or a table."""

from __future__ import annotations

import asyncio
import io
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumers.tools.bounds import parse_time
from consumers.tools.tail import TailRequest, tail
from consumers.tools.topic_range import RangeError
from deploy.embedded.process import ManagedProcess
from schemas.timestamps import format_ns, now_ns
from schemas.topics import QUOTES_RAW
from tests.helpers import eventually, tickwire_env, unique_symbol
from tests.integration.tools_support import end_offsets, offsets_arg, quote, tickwire

pytestmark = pytest.mark.integration


async def send(bootstrap: str, records: list[tuple[str, bytes, int | None]]) -> None:
    """Send (symbol, value, record timestamp ms) records to quotes.raw, pipelined."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(QUOTES_RAW.name, v, key=s.encode(), timestamp_ms=ts) for s, v, ts in records]
        for future in sent:
            await future
    finally:
        await producer.stop()


async def tail_in_process(bootstrap: str, request: TailRequest) -> str:
    """What ``tickwire tail`` prints for ``request``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100)
    await consumer.start()
    out = io.StringIO()
    try:
        await tail(consumer, request, out, asyncio.Event())
    finally:
        await consumer.stop()
    return out.getvalue()


async def test_tail_given_offset_time_and_symbol_prints_exactly_those_records(
    kafka_bootstrap: str, redis_url: str
) -> None:
    """Test that --from-offset and --from-time select the right records of one symbol, in JSON and table form."""
    # Arrange: four quotes of ours 10 ms apart (record time, after everything already sent), interleaved
    # with another symbol's
    ours, other = unique_symbol("L"), unique_symbol("L")
    t0_ms = now_ns() // 1_000_000 + 1
    values = [quote(ours, 10.0 + i, 10.5 + i, (t0_ms + i * 10) * 1_000_000) for i in range(4)]
    before = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    await send(kafka_bootstrap, [r for i, v in enumerate(values)
                                 for r in ((ours, v, t0_ms + i * 10), (other, b"not json", t0_ms + i * 10))])
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url)

    # Act
    as_json = await tickwire("tail", QUOTES_RAW.name, "--from-offset", offsets_arg(before), "--no-follow",
                             "--symbol", ours, "-o", "json", env=env)
    as_table = await tickwire("tail", QUOTES_RAW.name, "--from-offset", offsets_arg(before), "--no-follow",
                              "-s", f"{ours},{other}", "--limit", "8", env=env)
    # The same function in-process, for the rest (a command start costs seconds on a busy machine)
    from_time = await tail_in_process(kafka_bootstrap, TailRequest(
        QUOTES_RAW.name, parse_time(format_ns((t0_ms + 20) * 1_000_000)), frozenset({ours}), "json", follow=False))
    with pytest.raises(RangeError, match="does not exist"):
        await tail_in_process(kafka_bootstrap, TailRequest(f"no.such.topic.{uuid.uuid4().hex[:6]}", follow=False))

    # Assert
    assert as_json.code == 0, as_json.err
    lines = [orjson.loads(line) for line in as_json.out.splitlines()]
    assert [line["value"] for line in lines] == [orjson.loads(v) for v in values]
    assert {line["key"] for line in lines} == {ours} and {line["topic"] for line in lines} == {QUOTES_RAW.name}
    assert [line["timestamp"] for line in lines] == [format_ns((t0_ms + i * 10) * 1_000_000) for i in range(4)]
    assert [orjson.loads(line)["value"]["bp"] for line in from_time.splitlines()] == [12.0, 13.0]
    assert as_table.code == 0, as_table.err
    header, *rows = as_table.out.splitlines()
    assert header.split()[:6] == ["record", "time", "p:offset", "symbol", "bid", "bid"]
    assert len(rows) == 8 and sum(ours in r for r in rows) == 4 and sum("not json" in r for r in rows) == 4
    assert "10.0" in rows[0] + rows[1] and "10.5" in rows[0] + rows[1]


async def test_tail_given_no_start_follows_only_new_records_until_stopped(
    kafka_bootstrap: str, redis_url: str, log_dir: Path
) -> None:
    """Test that a live tail skips what was already there (even in one multi-record batch) and prints new ones."""
    # Arrange: old records of our symbol, sent as one batch
    symbol = unique_symbol("F")
    t0 = now_ns()
    await send(kafka_bootstrap, [(symbol, quote(symbol, 1.0 + i, 1.5 + i, t0 + i), None) for i in range(5)])
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url)
    tail = ManagedProcess("tail", [sys.executable, "-m", "tickwire", "tail", QUOTES_RAW.name, "-s", symbol,
                                   "-o", "json"], log_dir / f"tail-{uuid.uuid4().hex[:6]}.log", env)

    def printed() -> list[dict]:
        return [orjson.loads(line) for line in tail.tail(200).splitlines() if line.startswith("{")]

    async def banner() -> bool:
        return "tailing quotes.raw from the end" in tail.tail(50)

    async def three_new() -> bool:
        return len(printed()) >= 3

    # Act
    await tail.start()
    try:
        await eventually(banner, 30, "tail to start at the end", tail)
        await send(kafka_bootstrap, [(symbol, quote(symbol, 7.0 + i, 7.5 + i, t0 + 100 + i), None) for i in range(3)])
        await eventually(three_new, 30, "tail to print the new records", tail)
    finally:
        code = await tail.stop()

    # Assert
    assert [line["value"]["bp"] for line in printed()] == [7.0, 8.0, 9.0]
    assert code == 0, tail.tail(20)
