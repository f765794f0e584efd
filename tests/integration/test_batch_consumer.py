"""BatchConsumer against the real broker: the commit rule and the rebalance rule."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError

from schemas.topics import TopicSpec
from tests.helpers import eventually
from tickwire.runtime.member import BatchConsumer
from tickwire.topic_admin import ensure_topics

pytestmark = pytest.mark.integration
PARTITIONS = 2


class RecordingHandler:
    """A handler that records what it saw; its first ``fail_commits`` before_commit calls raise (an output was
    lost)."""

    def __init__(self, fail_commits: int = 0) -> None:
        self.fail_commits = fail_commits
        self.seen: list[tuple[int, int]] = []  # (partition, offset)
        self.assigned: list[tuple[set[TopicPartition], dict[TopicPartition, int]]] = []
        self.revoked: list[set[TopicPartition]] = []
        self.before_commits = 0
        self.outputs_lost = 0

    async def on_assigned(self, partitions: set[TopicPartition], committed: dict[TopicPartition, int]) -> None:
        self.assigned.append((set(partitions), dict(committed)))

    async def on_revoked(self, partitions: set[TopicPartition]) -> None:
        self.revoked.append(set(partitions))

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        self.seen.extend((r.partition, r.offset) for r in records)

    async def before_commit(self) -> None:
        self.before_commits += 1
        if self.before_commits <= self.fail_commits:
            raise KafkaError("an output was not acknowledged")

    async def on_outputs_lost(self) -> None:
        self.outputs_lost += 1


def member(bootstrap: str, group: str, topic: str, handler: RecordingHandler) -> BatchConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=100, session_timeout_ms=6000,
                                heartbeat_interval_ms=1000, partition_assignment_strategy=(RangePartitionAssignor,))
    return BatchConsumer(consumer, handler, topics=[topic], max_records=100, commit_interval_s=0.2, name=group)


async def new_topic_with(bootstrap: str, records: int) -> str:
    topic = f"test-batch-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, PARTITIONS, [TopicSpec(topic, "n", bytes, "test")])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for n in range(records):
            await producer.send_and_wait(topic, str(n).encode(), partition=n % PARTITIONS)
    finally:
        await producer.stop()
    return topic


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


@contextlib.asynccontextmanager
async def consuming(batch: BatchConsumer) -> AsyncIterator[BatchConsumer]:
    """``batch`` running for the block; then stopped (its last commit made) and disconnected."""
    await batch.consumer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(batch.run(stop))
    try:
        yield batch
    finally:
        stop.set()
        await task
        await batch.consumer.stop()


async def test_batch_consumer_given_finished_batches_commits_exactly_what_the_handler_finished(
        kafka_bootstrap: str) -> None:
    topic = await new_topic_with(kafka_bootstrap, 20)
    group = f"g-{uuid.uuid4().hex[:6]}"
    handler = RecordingHandler()
    async with consuming(member(kafka_bootstrap, group, topic, handler)):
        await eventually(lambda: _true(len(handler.seen) == 20), 60, "all 20 records handled")
        await eventually(lambda: _equal(committed(kafka_bootstrap, group, topic), {0: 10, 1: 10}), 30,
                         "offsets committed after the batch")

    assert sorted(handler.seen) == sorted((n % 2, n // 2) for n in range(20))  # each record once
    assert handler.before_commits >= 1  # outputs were confirmed before the commit


async def test_batch_consumer_given_lost_outputs_commits_nothing_and_processes_the_records_again(
        kafka_bootstrap: str) -> None:
    topic = await new_topic_with(kafka_bootstrap, 6)
    group = f"g-{uuid.uuid4().hex[:6]}"
    handler = RecordingHandler(fail_commits=1)
    async with consuming(member(kafka_bootstrap, group, topic, handler)):
        await eventually(lambda: _equal(committed(kafka_bootstrap, group, topic), {0: 3, 1: 3}), 60,
                         "the records processed again, then committed")

    # Nothing was committed on the failed attempt: every record came again from the start.
    assert sorted(handler.seen) == sorted([(n % 2, n // 2) for n in range(6)] * 2)
    assert handler.outputs_lost == 1  # told, so it could send again what reprocessing would not


async def test_batch_consumer_given_outputs_never_delivered_commits_nothing_so_the_records_come_again(
        kafka_bootstrap: str) -> None:
    topic = await new_topic_with(kafka_bootstrap, 6)
    group = f"g-{uuid.uuid4().hex[:6]}"
    failing = RecordingHandler(fail_commits=10**9)
    async with consuming(member(kafka_bootstrap, group, topic, failing)):
        await eventually(lambda: _true(len(failing.seen) >= 6 and failing.before_commits >= 1), 60,
                         "records handled and a commit attempted")

    assert await committed(kafka_bootstrap, group, topic) == {0: None, 1: None}
    again = RecordingHandler()
    async with consuming(member(kafka_bootstrap, group, topic, again)):
        await eventually(lambda: _true(len(again.seen) == 6), 60, "the uncommitted records delivered again")


async def test_batch_consumer_given_committed_offset_past_the_end_reads_the_recreated_partition_from_its_start(
        kafka_bootstrap: str) -> None:
    """What a deleted and recreated topic leaves: a commit beyond the partition's end. The broker answers
    OffsetOutOfRange, and the member starts from the beginning (auto_offset_reset=earliest)."""
    topic = await new_topic_with(kafka_bootstrap, 6)
    group = f"g-{uuid.uuid4().hex[:6]}"
    setter = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await setter.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        setter.assign(partitions)
        await setter.commit(dict.fromkeys(partitions, 1000))
    finally:
        await setter.stop()
    handler = RecordingHandler()
    async with consuming(member(kafka_bootstrap, group, topic, handler)):
        await eventually(lambda: _true(len(handler.seen) == 6), 60, "the partitions read from their start")

    assert sorted(handler.seen) == sorted((n % 2, n // 2) for n in range(6))


async def test_batch_consumer_given_a_second_member_commits_before_revoking_and_hands_over_the_offsets(
        kafka_bootstrap: str) -> None:
    topic = await new_topic_with(kafka_bootstrap, 10)
    group = f"g-{uuid.uuid4().hex[:6]}"
    first, second = RecordingHandler(), RecordingHandler()
    async with consuming(member(kafka_bootstrap, group, topic, first)):
        await eventually(lambda: _true(len(first.seen) == 10), 60, "the first member handled everything")
        async with consuming(member(kafka_bootstrap, group, topic, second)):
            await eventually(lambda: _true(bool(first.revoked) and bool(second.assigned)), 60, "a rebalance")
            handed = second.assigned[-1]

    (moved,) = [tp for tp in handed[0]]  # range: one partition each
    assert first.revoked[-1] >= {moved}
    assert handed[1] == {moved: 5}  # what the first member finished, committed before it let go
    assert second.seen == []  # so nothing was delivered twice


async def _true(value: bool) -> bool:
    return value


async def _equal(got: object, wanted: object) -> bool:
    return await got == wanted  # type: ignore[misc]
