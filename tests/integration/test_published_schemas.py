"""Every message of every topic a pipeline run produces, and every JSON value it leaves in Redis, validates
against the committed schemas (schemas/json/) with a JSON Schema validator, read as a service in another
language reads them: index.json first, then the files it names.

The run is ``tickwire run`` on the session's broker and Redis with the local Alpaca feed, made to produce every
kind of record: accepted and rejected quotes, trades (the ``last`` mark policy also writes ``trade:{SYMBOL}``),
minute and daily bars, positions from another service (valued, unvalued, refused, closed by a tombstone), their
P&L and subscriptions, and a reconnect gap with its REST backfill. Its records are the ones appended to any
topic between the start and the stop of the run.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from redis.asyncio import Redis

from alpaca_feed.server import AlpacaFeedServer
from schemas.events import Position
from schemas.published import INDEX_FILE, schema_directory
from schemas.timestamps import NS_PER_SECOND, format_ns, now_ns
from schemas.topics import (
    ACCOUNTS_KEY,
    ALL_TOPICS,
    API_SUBSCRIPTIONS_KEY,
    FEED_GAPS,
    INGEST_LEASE_KEY,
    PNL_CHANNEL_PATTERN,
    POSITIONS,
    POSITIONS_REJECTED,
    PRICE_CHANNEL_PATTERN,
    PRICE_STREAMS_KEY,
    PROCESSOR_STATS_KEY,
    TRADES_RAW,
    latest_price_changelog,
    marks_topic,
    pnl_key,
    pnl_total_cents_key,
    position_key,
    progress_key,
    symbol_stats_key,
)
from tests.helpers import eventually, read_topic_until, tickwire_env, tickwire_run_process, unique_symbol
from tickwire.kafka import topic_partitions
from tickwire.runtime.restore import read_ranges
from tickwire.settings import TickwireSettings

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

DEADLINE = 60.0
MINUTE = 60 * NS_PER_SECOND
# Redis names tickwire writes that are not JSON (counters, sets, the lease) or are processor bookkeeping.
UNPUBLISHED_REDIS = (PROCESSOR_STATS_KEY, INGEST_LEASE_KEY, ACCOUNTS_KEY, API_SUBSCRIPTIONS_KEY, PRICE_STREAMS_KEY,
                     pnl_total_cents_key("*"), symbol_stats_key("*"), progress_key("*", "*"))
# Every Redis value such a run writes.
EXPECTED_REDIS = {"redis.price", "redis.price.updated", "redis.price.stream", "redis.positions", "redis.pnl",
                  "redis.pnl_total", "redis.pnl.updated", "redis.pnl.stream", "redis.close", "redis.trade",
                  "redis.ingest_status"}


class PublishedSchemas:
    """The committed index and a validator per schema, from the files alone."""

    def __init__(self) -> None:
        folder = schema_directory()
        self.index: dict[str, Any] = json.loads(folder.joinpath(INDEX_FILE).read_text())
        entries: dict[str, dict[str, Any]] = self.index["schemas"]
        self.validators = {name: Draft202012Validator(json.loads(folder.joinpath(entry["file"]).read_text()))
                           for name, entry in entries.items()}
        self.topics = {(e["topic"], e["part"]): name for name, e in entries.items() if e["kind"] == "topic"}
        self.redis = [(self.template(e["redis"]), e["redis_type"], name, e) for name, e in entries.items()
                      if e["kind"] == "redis"]

    def template(self, name: str) -> re.Pattern[str]:
        """A Redis name with placeholders (``price:{SYMBOL}``) as the regular expression of its instances."""
        pattern = re.escape(name)
        for placeholder, regex in self.index["placeholders"].items():
            pattern = pattern.replace(re.escape("{" + placeholder + "}"), f"(?:{regex})")
        return re.compile(pattern)

    def redis_entry(self, name: str, redis_type: str) -> tuple[str, dict[str, Any]] | None:
        """The schema name and index entry of the Redis value at ``name``, or None."""
        for pattern, kind, schema, entry in self.redis:
            if kind == redis_type and pattern.fullmatch(name):
                return schema, entry
        return None


@dataclass
class Findings:
    """What was validated (schema name -> count) and every value that failed, with where it was."""

    validated: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def count(self, what: str) -> None:
        self.validated[what] = self.validated.get(what, 0) + 1

    def check(self, schemas: PublishedSchemas, name: str, value: Any, where: str) -> None:
        error = best_match(schemas.validators[name].iter_errors(value))
        if error is not None:
            self.problems.append(f"{where} ({name}): {error.json_path}: {error.message}")
        self.count(name)

    def check_json(self, schemas: PublishedSchemas, name: str, raw: bytes, where: str) -> None:
        try:
            value = json.loads(raw)
        except ValueError as exc:
            self.problems.append(f"{where} ({name}): not JSON: {exc}")
            return
        self.check(schemas, name, value, where)


async def end_offsets(bootstrap: str) -> dict[TopicPartition, int]:
    """The end offset of every partition of every topic on the broker but its own (``__consumer_offsets``)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = [t for t in await consumer.topics() if not t.startswith("_")]
        partitions = [TopicPartition(t, p) for t in topics for p in await topic_partitions(consumer, t)]
        return dict(await consumer.end_offsets(partitions)) if partitions else {}
    finally:
        await consumer.stop()


@asynccontextmanager
async def channel_messages(redis: Redis) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Every (channel, message) published on the price and P&L channels while the block runs."""
    received: list[tuple[str, bytes]] = []
    pubsub = redis.pubsub()
    await pubsub.psubscribe(PRICE_CHANNEL_PATTERN, PNL_CHANNEL_PATTERN)

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
            if message is not None:
                received.append((message["channel"].decode(), message["data"]))

    task = asyncio.create_task(listen())
    try:
        yield received
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pubsub.aclose()


def quote(symbol: str, bid: float, ask: float, t_ns: int) -> dict[str, Any]:
    return {"T": "q", "S": symbol, "bx": "V", "bp": bid, "bs": 2, "ax": "Q", "ap": ask, "as": 4, "c": ["R"],
            "z": "C", "t": t_ns}


def trade(symbol: str, price: float, t_ns: int, trade_id: int) -> dict[str, Any]:
    return {"T": "t", "S": symbol, "i": trade_id, "x": "V", "p": price, "s": 100, "c": ["@"], "z": "C", "t": t_ns}


def bar(kind: str, symbol: str, close: float, t_ns: int) -> dict[str, Any]:
    return {"T": kind, "S": symbol, "o": close, "h": close, "l": close, "c": close, "v": 100, "n": 1, "vw": close,
            "t": t_ns}


async def send_positions(bootstrap: str, records: list[tuple[str, bytes | None]]) -> None:
    """Publish to ``positions`` as another service does (a None value is a tombstone)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(POSITIONS.name, value, key=key.encode())
    finally:
        await producer.stop()


def position(account: str, symbol: str, qty: str, avg: str) -> tuple[str, bytes]:
    value = Position(account=account, symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal(avg),
                     updated_at=format_ns(now_ns()))
    return position_key(account, symbol), value.to_json()


async def redis_values(redis: Redis, schemas: PublishedSchemas, findings: Findings) -> list[str]:
    """Validate every JSON value in the database; returns the keys no schema and no exception names."""
    unnamed = []
    async for raw_key in redis.scan_iter(count=500):
        key = raw_key.decode()
        kind = (await redis.type(key)).decode()
        found = schemas.redis_entry(key, kind)
        if found is None:
            if not any(fnmatch.fnmatchcase(key, pattern) for pattern in UNPUBLISHED_REDIS):
                unnamed.append(f"{key} ({kind})")
            continue
        name, entry = found
        if kind == "string":
            raw = await redis.get(key)
            if raw is not None:  # expired meanwhile
                findings.check_json(schemas, name, raw, f"GET {key}")
        elif kind == "hash":
            for hash_field, raw in (await redis.hgetall(key)).items():
                if not schemas.template(entry["field"]).fullmatch(hash_field.decode()):
                    findings.problems.append(f"HGET {key} {hash_field!r}: field is not {entry['field']}")
                findings.check_json(schemas, name, raw, f"HGET {key} {hash_field.decode()}")
        elif kind == "stream":
            for entry_id, fields in await redis.xrange(key):
                where = f"XRANGE {key} {entry_id.decode()}"
                if set(fields) != {entry["field"].encode()}:
                    findings.problems.append(f"{where}: fields {sorted(fields)}, expected only {entry['field']!r}")
                findings.check_json(schemas, name, fields.get(entry["field"].encode(), b""), where)
    return unnamed


def topic_records(records: dict[TopicPartition, list[ConsumerRecord]], internal: set[str],
                  schemas: PublishedSchemas, findings: Findings) -> None:
    """Validate the key and value of every record but those of the ``internal`` topics (which have no schema)."""
    for tp, batch in records.items():
        for record in batch:
            where = f"{tp.topic}[{tp.partition}]@{record.offset}"
            if tp.topic in internal:
                findings.count("(internal topics, unpublished)")
                continue
            key_name, value_name = schemas.topics.get((tp.topic, "key")), schemas.topics.get((tp.topic, "value"))
            if key_name is None or value_name is None:
                findings.problems.append(f"{where}: topic {tp.topic!r} has no published schema")
                continue
            findings.check(schemas, key_name, (record.key or b"").decode("utf-8", "replace"), where + " key")
            if record.value is None:
                if not schemas.index["schemas"][value_name].get("tombstones"):
                    findings.problems.append(f"{where}: a tombstone, which the index does not allow")
                findings.count("(tombstones)")
            else:
                findings.check_json(schemas, value_name, record.value, where)


async def test_pipeline_run_given_every_kind_of_record_each_one_validates_against_its_published_schema(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    """Test that every key and value of every topic the run wrote, every value it left in Redis and every
    channel message it published validates against the committed schema its index names."""
    # Arrange
    schemas = PublishedSchemas()
    findings = Findings()
    traded, unvalued, refused = unique_symbol("J"), unique_symbol("K"), unique_symbol("L")
    account = f"acct-{uuid.uuid4().hex[:6]}"
    app_id = f"schemas-{uuid.uuid4().hex[:8]}"
    feed = AlpacaFeedServer(rate_per_symbol=0)
    await feed.start()
    env = tickwire_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url, ALPACA_STREAM_URL=feed.url(),
        ALPACA_DATA_URL=feed.http_url(), TICKWIRE_SYMBOLS=traded, TICKWIRE_PROCESSOR_APP_ID=app_id,
        TICKWIRE_MARK_POLICY="last", TICKWIRE_RUN_DIR=str(tmp_path / "run"),
        # Reconnect at once and close the gap soon after, as the ingest tests do.
        TICKWIRE_RECONNECT_BASE_SECONDS="0.1", TICKWIRE_RECONNECT_MAX_SECONDS="0.8", TICKWIRE_GAP_SETTLE_SECONDS="1",
    )
    run = tickwire_run_process(tmp_path, env)
    started_at = await end_offsets(kafka_bootstrap)

    async def valued(symbols: set[str]) -> bool:
        return {f.decode() for f in await redis.hkeys(pnl_key(account))} == symbols

    async with channel_messages(redis) as published:
        try:
            await run.start()
            await feed.wait_for_subscription("quotes", [traded], timeout=DEADLINE)
            t0 = now_ns() // NS_PER_SECOND * NS_PER_SECOND + 123_456_789

            # Act
            feed.inject([
                bar("d", traded, 149.50, (t0 // (24 * 60 * MINUTE) - 1) * 24 * 60 * MINUTE),
                quote(traded, 150.25, 150.27, t0),
                quote(traded, 151.00, 150.90, t0 + NS_PER_SECOND),  # crossed: rejected
                quote(traded, 149.00, 149.02, t0 - NS_PER_SECOND),  # older than the latest: rejected
                trade(traded, 150.26, t0 + 5, 1),
                bar("b", traded, 150.26, t0 // MINUTE * MINUTE),
                quote(traded, 150.30, 150.34, t0 + 2 * NS_PER_SECOND),
            ])
            await send_positions(kafka_bootstrap, [
                position(account, traded, "100", "150.00"), position(account, unvalued, "-10", "20.00"),
                position(account, refused, "1", "-1.00"),  # a negative entry price: refused
            ])
            await eventually(lambda: valued({traded, unvalued}), DEADLINE, "both positions valued", run)
            await read_topic_until(kafka_bootstrap, POSITIONS_REJECTED.name,
                                   lambda vs: any(v.get("symbol") == refused for v in vs), DEADLINE)

            # A reconnect gap, and the trade it missed repaired over REST.
            feed.faults.reject_handshakes(status=429, seconds=DEADLINE)
            await feed.faults.drop()
            feed.inject([trade(traded, 150.40, t0 + 3 * NS_PER_SECOND, 2)])
            feed.faults.clear()
            await feed.wait_for_connections(feed.connection_count + 1, timeout=DEADLINE)
            await feed.wait_for_subscription("trades", [traded], timeout=DEADLINE)
            feed.inject([quote(traded, 150.40, 150.44, t0 + 4 * NS_PER_SECOND)])
            await read_topic_until(kafka_bootstrap, FEED_GAPS.name,
                                   lambda vs: any(v.get("symbol") == traded for v in vs), DEADLINE)
            await read_topic_until(kafka_bootstrap, TRADES_RAW.name, lambda vs: any(
                v.get("S") == traded and v.get("source") == "backfill" for v in vs), DEADLINE)

            await send_positions(kafka_bootstrap, [(position_key(account, unvalued), None)])  # closed
            await eventually(lambda: valued({traded}), DEADLINE, "the closed position gone", run)
            unnamed = await redis_values(redis, schemas, findings)
        finally:
            await run.stop(timeout=15)
            await feed.stop()
    ranges = {tp: (started_at.get(tp, 0), end) for tp, end in (await end_offsets(kafka_bootstrap)).items()}
    records = await read_ranges(TickwireSettings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap), ranges)
    topic_records(records, {marks_topic(app_id), latest_price_changelog(app_id)}, schemas, findings)
    for channel, message in published:
        found = schemas.redis_entry(channel, "channel")
        if found is None:
            findings.problems.append(f"PUBLISH {channel}: no published schema")
        else:
            findings.check_json(schemas, found[0], message, f"PUBLISH {channel}")

    # Assert
    print("validated:", json.dumps(dict(sorted(findings.validated.items()))))
    assert findings.problems == [], "\n".join(findings.problems[:40])
    assert unnamed == [], f"Redis keys that are neither published nor known to be internal: {unnamed}"
    topics_seen = {name.removeprefix("topic.").removesuffix(".value") for name in findings.validated
                   if name.endswith(".value")}
    assert {spec.name for spec in ALL_TOPICS} <= topics_seen, "topics the run wrote nothing to"
    assert EXPECTED_REDIS <= set(findings.validated), "Redis values the run did not leave"
    assert findings.validated["(tombstones)"] == 1
