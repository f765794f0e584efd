"""The embedded broker's large-partition limit: with tickwire's FetchGuard the newest records still come.

On Tansu a fetch lists every stored batch of the partition from the start and stops when its wait runs
out, so once a partition holds tens of thousands of batches a 10 ms fetch returns nothing, for good
(docs/embedded-broker.md). The FetchGuard widens the wait until records come. Redpanda has no such limit:
there the test only checks that the newest records are read.
"""

from __future__ import annotations

import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.broker_budget import fill
from processors.settings import ProcessorSettings
from schemas.topics import TopicSpec
from tickwire.fetch_guard import FetchGuard
from tickwire.topic_admin import ensure_topics

pytestmark = pytest.mark.integration

BATCHES = 50_000
BASE_WAIT_S = 0.01  # the price stage's default: 50k batches are past its limit, so unguarded this fails


async def test_consumer_given_50k_single_record_batches_reads_the_last_10_records_within_5s(
        kafka_bootstrap: str) -> None:
    topic = f"test-limit-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, 1, [TopicSpec(topic, "none", bytes, "broker-limit test")])
    last = await fill(kafka_bootstrap, topic, BATCHES)  # single-record batches, as a slow feed makes them
    settings = ProcessorSettings()
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=round(BASE_WAIT_S * 1000))
    await consumer.start()
    got: list[int] = []
    position = {"next": last - 9}
    guard = FetchGuard(consumer, lambda _: position["next"], base_wait_s=BASE_WAIT_S,
                       max_wait_s=settings.fetch_wait_max_s, name="limit-test")
    try:
        consumer.assign([tp])
        consumer.seek(tp, last - 9)
        started = time.monotonic()
        while len(got) < 10 and time.monotonic() - started < 5.0:
            batches = await consumer.getmany(timeout_ms=100)
            guard(batches)
            for record in batches.get(tp, []):
                got.append(record.offset)
                position["next"] = record.offset + 1
        elapsed = time.monotonic() - started
    finally:
        await consumer.stop()

    print(f"read the last 10 of {BATCHES} batches in {elapsed:.2f}s; fetch wait ended at {guard.wait_s * 1000:.0f} ms")
    assert got == list(range(last - 9, last + 1)), f"read {got} in {elapsed:.1f}s (fetch wait {guard.wait_s}s)"
