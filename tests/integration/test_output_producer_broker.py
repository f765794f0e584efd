"""OutputProducer against a real broker: every record arrives once, in per-key order, in its key's partition."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from schemas.topics import TopicSpec
from tickwire.runtime.outputs import OutputProducer
from tickwire.settings import TickwireSettings
from tickwire.topic_admin import ensure_topics

pytestmark = pytest.mark.integration

PARTITIONS = [0, 1, 2, 3]


async def read_all(bootstrap: str, topic: str, count: int, timeout: float) -> list[ConsumerRecord]:
    """Read ``topic`` from the start until ``count`` records arrived; checks that nothing lies beyond them."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=100)
    await consumer.start()
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {topic}: {len(records)} of {count} records")
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
        per_partition = defaultdict(int)
        for record in records:
            per_partition[record.partition] += 1
        # Nothing lies beyond what was sent: each partition's end is the count read from it
        assert {p: consumer.highwater(TopicPartition(topic, p)) for p in per_partition} == per_partition
        return records
    finally:
        await consumer.stop()


async def test_send_many_given_thousands_of_records_delivers_each_once_in_key_order_and_partition(
    kafka_bootstrap: str,
) -> None:
    """Test that 5,000 records over 200 keys, several full batches per partition, arrive exactly as sent."""
    # Arrange: a fresh topic; ~1 KiB values, so the first call fills more than one 512 KiB batch per partition
    topic = f"test.outputs.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, len(PARTITIONS), [TopicSpec(topic, "key", bytes, "OutputProducer test")])
    keys = [f"acct{i % 7}:S{i:03d}".encode() for i in range(200)]
    sent = [(keys[n % 200], b"%s#%05d#" % (keys[n % 200], n) + b"x" * 1_000) for n in range(5_000)]
    outputs = OutputProducer(TickwireSettings(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap))

    # Act
    try:
        await outputs.send_many(topic, sent[:2_500])
        for start in range(2_500, len(sent), 250):
            await asyncio.sleep(0)  # shipping tasks run between calls, as between agent batches
            await outputs.send_many(topic, sent[start:start + 250])
        await outputs.send(topic, keys[0], None)  # a tombstone, after the key's other records
        await asyncio.wait_for(outputs.flush(), 60)
    finally:
        await outputs.stop()
    received = await read_all(kafka_bootstrap, topic, len(sent) + 1, timeout=60)

    # Assert
    partitioner = DefaultPartitioner()
    assert all(r.partition == partitioner(r.key, PARTITIONS, PARTITIONS) for r in received)
    assert sorted((r.key, r.value) for r in received if r.value is not None) == sorted(sent)
    by_key: dict[bytes, list[bytes | None]] = defaultdict(list)
    for record in sorted(received, key=lambda r: (r.partition, r.offset)):
        by_key[record.key].append(record.value)
    assert by_key == {key: [v for k, v in sent if k == key] + ([None] if key == keys[0] else []) for key in keys}
