"""A position older than its topics' retention is still valued after a takeover (the P&L restore reads compacted
topics only).

The P&L stage rebuilds positions on takeover by reading ``positions.by_symbol`` from its start to the committed
offset. When that topic deleted by time, a position unchanged for longer than its ``retention.ms`` was gone
after a rebalance; it is compacted now (key account:symbol), so retention never removes a live position.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from redis.asyncio import Redis

from schemas.timestamps import now_ns
from schemas.topics import POSITIONS, POSITIONS_BY_SYMBOL, QUOTES_RAW, TopicSpec, pnl_channel, position_key
from tests.helpers import eventually, processor_process, tickwire_env, unique_symbol
from tests.integration.test_pnl_processor import next_update, position_value, quote_value
from tickwire.topic_admin import Retention, ensure_topics

pytestmark = pytest.mark.integration

SHORT_RETENTION_MS = 1_000
TOPIC_CONFIG_SOURCE = 1  # DescribeConfigs' config_source of a value set on the topic itself


async def set_retention(bootstrap: str, topics: list[str], retention_ms: int | None) -> None:
    """Set (or, with None, remove) ``retention.ms`` on ``topics``, as an operator or a broker default might."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # AlterConfigs replaces a topic's whole set: keep the cleanup policy tickwire created it with.
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
        current = {resource[3]: {entry[0]: entry[1] for entry in resource[4] if entry[3] == TOPIC_CONFIG_SOURCE}
                   for response in described for resource in response.resources}
        resources = []
        for topic in topics:
            configs = {k: v for k, v in current[topic].items() if v is not None and k != "retention.ms"}
            if retention_ms is not None:
                configs["retention.ms"] = str(retention_ms)
            resources.append(ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs))
        await admin.alter_configs(resources)
    finally:
        await admin.close()


async def retention_pass(bootstrap: str, producer: AIOKafkaProducer) -> None:
    """Return once the broker's retention pass deleted a record written now to a topic of short retention."""
    canary = TopicSpec(f"retention-canary-{uuid.uuid4().hex[:8]}", "none", bytes, "retention canary")
    await ensure_topics(bootstrap, 1, [canary], retention=Retention(hours=SHORT_RETENTION_MS / 3_600_000))
    await producer.send_and_wait(canary.name, b"canary")
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(canary.name, 0)

        async def deleted() -> bool:
            return bool((await consumer.beginning_offsets([tp]))[tp] > 0)

        # Kafka checks retention every log.retention.check.interval.ms, the first time 30 s after it started.
        await eventually(deleted, 90, "the broker's retention pass")
    finally:
        await consumer.stop()


async def test_pnl_restore_given_a_position_older_than_the_retention_still_values_it_after_a_takeover(
    kafka_bootstrap: str, redis: Redis, redis_url: str, log_dir: Path
) -> None:
    # Arrange: a position valued by a first processor, which then stops (its offsets committed).
    account, symbol = f"acct-{uuid.uuid4().hex[:8]}", unique_symbol("R")
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url,
                       TICKWIRE_PROCESSOR_APP_ID=f"test-retention-{uuid.uuid4().hex[:8]}")
    pubsub = redis.pubsub()
    await pubsub.subscribe(pnl_channel(account))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    topics = [POSITIONS.name, POSITIONS_BY_SYMBOL.name]
    first = processor_process(log_dir, env)
    second = processor_process(log_dir, env)
    try:
        await first.start()
        await producer.send_and_wait(QUOTES_RAW.name, quote_value(symbol, 99.99, 100.01, now_ns()),
                                     key=symbol.encode())
        await producer.send_and_wait(POSITIONS.name, position_value(account, symbol, "10", "90"),
                                     key=position_key(account, symbol).encode())
        await next_update(pubsub, {"symbol": symbol, "unrealized_pnl": "100.00"}, first)
        await first.stop()

        # Act: the positions topics get a retention far shorter than the position's age, the broker's retention
        # pass deletes a younger record of a canary topic with the same retention (so it ran over the positions
        # too), the price moves, and a second processor takes the partitions over.
        await set_retention(kafka_bootstrap, topics, SHORT_RETENTION_MS)
        await retention_pass(kafka_bootstrap, producer)
        await producer.send_and_wait(QUOTES_RAW.name, quote_value(symbol, 100.99, 101.01, now_ns()),
                                     key=symbol.encode())
        await second.start()

        # Assert: the restored position is revalued at the new price.
        update = await next_update(pubsub, {"symbol": symbol, "unrealized_pnl": "110.00"}, second)
    finally:
        await set_retention(kafka_bootstrap, topics, None)
        await producer.stop()
        await pubsub.aclose()
        await first.stop()
        await second.stop()

    assert (update["account"], update["qty"], update["mark_price"]) == (account, "10", "101.00")
