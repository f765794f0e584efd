"""aiokafka's transactional API works against the embedded Apache Kafka 4.1 broker: groundwork for exactly once.

tickwire processes at least once today: a stage sends its outputs, awaits their delivery, then commits the
consumed offsets with ``consumer.commit``, so a crash between the two processes the records again. Exactly once
would send the outputs and the consumed offsets in one Kafka transaction (consume-transform-produce). aiokafka
0.14 speaks only the v0 transaction requests (InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
TxnOffsetCommit, EndTxn) and Produce v8 at most, which Kafka 4.1 still accepts but serves with the
pre-KIP-890 protocol, so these tests pin down, on the broker tickwire ships, the three properties exactly once
rests on: a committed transaction publishes its outputs and moves the group's offset together, an aborted one
does neither, and a zombie (an older producer with the same ``transactional_id``) is fenced and can publish
nothing.

A record read with ``read_committed`` is invisible until its transaction ends, so "nothing visible" is judged
against a later committed record on the same partition: once a ``read_committed`` reader has reached it, every
earlier transaction on that partition has ended and everything it will ever show of them is before it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import ProducerFenced

from schemas.topics import TopicSpec
from tests.helpers import eventually, read_values_until
from tickwire.topic_admin import ensure_topics

pytestmark = pytest.mark.integration

TIMEOUT_S = 60
END = b"end"  # the committed record that closes a read of the output (see the module docstring)


@dataclass(frozen=True)
class Topics:
    """A one-partition input topic, its group, and a one-partition output topic, of one test."""

    input: str
    output: str
    group: str

    @property
    def input_tp(self) -> TopicPartition:
        return TopicPartition(self.input, 0)


async def new_topics(bootstrap: str, inputs: int) -> Topics:
    """Unique input and output topics, ``inputs`` records on the input (values ``in-0``, ``in-1``, ...)."""
    suffix = uuid.uuid4().hex[:8]
    topics = Topics(f"test-txn-in-{suffix}", f"test-txn-out-{suffix}", f"test-txn-{suffix}")
    await ensure_topics(bootstrap, 1, [TopicSpec(topics.input, "n", bytes, "transaction test input"),
                                       TopicSpec(topics.output, "n", bytes, "transaction test output")])
    async with AIOKafkaProducer(bootstrap_servers=bootstrap) as producer:
        for n in range(inputs):
            await producer.send(topics.input, f"in-{n}".encode())
        await producer.flush()
    return topics


@asynccontextmanager
async def group_consumer(bootstrap: str, topics: Topics) -> AsyncIterator[AIOKafkaConsumer]:
    """A member of the test's group on its input, as an exactly-once stage would read: committed records only,
    offsets committed by the producer's transaction, not by the consumer."""
    consumer = AIOKafkaConsumer(topics.input, bootstrap_servers=bootstrap, group_id=topics.group,
                                isolation_level="read_committed", enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


def transactional_producer(bootstrap: str, transactional_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=transactional_id,
                            enable_idempotence=True)


async def consume(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord]:
    """The next ``count`` records of the consumer's (one) partition, or fail after a deadline."""
    records: list[ConsumerRecord] = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(records) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out consuming {count} records; got {len(records)}")
        batch = await consumer.getmany(timeout_ms=200, max_records=count - len(records))
        for partition_records in batch.values():
            records.extend(partition_records)
    return records


async def read_output(bootstrap: str, topic: str, isolation_level: str,
                      done: Callable[[list[bytes]], bool]) -> list[bytes]:
    """The values of ``topic`` from its start, read with ``isolation_level`` until ``done(values)``."""
    return await read_values_until(bootstrap, topic, done, TIMEOUT_S, lambda value: value,
                                   isolation_level=isolation_level)


async def committed_offset(bootstrap: str, topics: Topics) -> int | None:
    """The group's committed offset on the input partition (None: nothing committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=topics.group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(topics.input_tp)
    finally:
        await consumer.stop()


async def process_in_transaction(producer: AIOKafkaProducer, topics: Topics, records: list[ConsumerRecord],
                                 tag: str) -> None:
    """Consume-transform-produce inside the producer's open transaction: one output per input, then the offset
    after the last input, for the group."""
    for record in records:
        await producer.send_and_wait(topics.output, f"{tag}:{record.value.decode()}".encode())
    await producer.send_offsets_to_transaction({topics.input_tp: records[-1].offset + 1}, topics.group)


async def close_output(producer: AIOKafkaProducer, topics: Topics) -> None:
    """Commit a transaction holding only the END record. The coordinator accepts its first send only once the
    producer's previous transaction has ended on every partition it touched (output and group offsets alike)."""
    await producer.begin_transaction()
    await producer.send_and_wait(topics.output, END)
    await producer.commit_transaction()


async def test_transaction_given_outputs_and_consumed_offsets_commits_both_visible_to_read_committed(
        kafka_bootstrap: str) -> None:
    # Arrange: three records on the input, a member of the group reading them, a transactional producer.
    topics = await new_topics(kafka_bootstrap, 3)
    producer = transactional_producer(kafka_bootstrap, f"test-txn-{uuid.uuid4().hex[:8]}")
    await producer.start()
    try:
        async with group_consumer(kafka_bootstrap, topics) as consumer:
            records = await consume(consumer, 3)

            # Act: the outputs and the consumed offsets in one transaction, committed.
            await producer.begin_transaction()
            await process_in_transaction(producer, topics, records, "ok")
            await producer.commit_transaction()
    finally:
        await producer.stop()

    # Assert: a read_committed reader sees every output once, and the group's offset moved past the inputs.
    outputs = await read_output(kafka_bootstrap, topics.output, "read_committed", lambda v: len(v) >= 3)
    assert outputs == [b"ok:in-0", b"ok:in-1", b"ok:in-2"]
    # The group coordinator applies the offsets when the commit marker reaches __consumer_offsets, just after
    # EndTxn returns.
    assert await eventually(lambda: committed_offset(kafka_bootstrap, topics), TIMEOUT_S,
                            "the transaction's offset committed") == 3


async def test_transaction_given_an_abort_hides_its_outputs_from_read_committed_and_leaves_the_offset(
        kafka_bootstrap: str) -> None:
    # Arrange: six records on the input; the first three processed in a committed transaction (offset 3).
    topics = await new_topics(kafka_bootstrap, 6)
    producer = transactional_producer(kafka_bootstrap, f"test-txn-{uuid.uuid4().hex[:8]}")
    await producer.start()
    try:
        async with group_consumer(kafka_bootstrap, topics) as consumer:
            await producer.begin_transaction()
            await process_in_transaction(producer, topics, await consume(consumer, 3), "ok")
            await producer.commit_transaction()
            await eventually(lambda: committed_offset(kafka_bootstrap, topics), TIMEOUT_S,
                             "the first transaction's offset committed")

            # Act: the next three processed in a transaction that is aborted, then a committed END record.
            await producer.begin_transaction()
            await process_in_transaction(producer, topics, await consume(consumer, 3), "aborted")
            await producer.abort_transaction()
            await close_output(producer, topics)
    finally:
        await producer.stop()

    # Assert: read_committed skips the aborted outputs, read_uncommitted shows them, the offset stayed at 3.
    committed = await read_output(kafka_bootstrap, topics.output, "read_committed", lambda v: END in v)
    uncommitted = await read_output(kafka_bootstrap, topics.output, "read_uncommitted", lambda v: END in v)
    assert committed == [b"ok:in-0", b"ok:in-1", b"ok:in-2", END]
    assert uncommitted == [b"ok:in-0", b"ok:in-1", b"ok:in-2",
                           b"aborted:in-3", b"aborted:in-4", b"aborted:in-5", END]
    assert await committed_offset(kafka_bootstrap, topics) == 3


async def test_transaction_given_a_newer_producer_with_the_same_id_fences_the_zombie_which_publishes_nothing(
        kafka_bootstrap: str) -> None:
    # Arrange: a zombie mid-transaction over two inputs: one output delivered, the consumed offsets sent.
    topics = await new_topics(kafka_bootstrap, 2)
    transactional_id = f"test-txn-{uuid.uuid4().hex[:8]}"
    zombie = transactional_producer(kafka_bootstrap, transactional_id)
    successor = transactional_producer(kafka_bootstrap, transactional_id)
    await zombie.start()
    try:
        async with group_consumer(kafka_bootstrap, topics) as consumer:
            records = await consume(consumer, 2)
            await zombie.begin_transaction()
            await zombie.send_and_wait(topics.output, b"zombie:before-fence")
            await zombie.send_offsets_to_transaction({topics.input_tp: records[-1].offset + 1}, topics.group)

            # Act: its successor starts (InitProducerId with the same transactional_id: the coordinator aborts
            # the zombie's transaction and bumps the epoch); the zombie, unaware, sends one more output and
            # commits. (The send is not awaited first: a fenced send puts aiokafka's transaction manager in
            # FATAL_ERROR, after which commit_transaction raises AssertionError, not ProducerFenced.)
            await successor.start()
            after_fence = await zombie.send(topics.output, b"zombie:after-fence")
            with pytest.raises(ProducerFenced):
                await zombie.commit_transaction()
            with pytest.raises(ProducerFenced):
                await after_fence
            await close_output(successor, topics)
    finally:
        await zombie.stop()
        await successor.stop()

    # Assert: nothing of the zombie's transaction is committed, outputs or offset; the broker refused its send
    # after the fence outright (it is not even in the log); what it sent before was aborted by the fence.
    committed = await read_output(kafka_bootstrap, topics.output, "read_committed", lambda v: END in v)
    uncommitted = await read_output(kafka_bootstrap, topics.output, "read_uncommitted", lambda v: END in v)
    assert committed == [END]
    assert uncommitted == [b"zombie:before-fence", END]
    assert await committed_offset(kafka_bootstrap, topics) is None
