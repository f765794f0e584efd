"""ProgressReporter against a real Redis: what a member reports, and a rebalance in the middle of a report."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import TopicPartition
from redis.asyncio import Redis

from schemas.events import PartitionProgress
from schemas.topics import processed_field, progress_key
from tickwire.runtime.progress import ProgressReporter

pytestmark = pytest.mark.integration


class RebalancingConsumer:
    """Stands in for an AIOKafkaConsumer whose group rebalances while ``committed()`` is awaited: the partition
    asked about is revoked meanwhile, and ``highwater()`` asserts as aiokafka's does on a partition not owned."""

    def __init__(self, owned: set[TopicPartition], highwater: int) -> None:
        self.owned = set(owned)
        self._highwater = highwater

    def assignment(self) -> set[TopicPartition]:
        return set(self.owned)

    async def committed(self, tp: TopicPartition) -> int | None:
        self.owned.discard(tp)  # the rebalance completes while this member waits for the answer
        return 7

    def highwater(self, tp: TopicPartition) -> int | None:
        assert tp in self.owned, "Partition is not assigned"
        return self._highwater


async def test_report_given_a_partition_revoked_while_its_commit_is_read_reports_it_instead_of_crashing(
        redis: Redis) -> None:
    """Test that a rebalance during a report (seen in a two-processor run, where it killed the processor)
    costs nothing: every partition owned when the report began is written with its offset and high watermark."""
    # Arrange
    topic, app_id = f"quotes-{uuid.uuid4().hex[:6]}", f"app-{uuid.uuid4().hex[:6]}"
    fetched, unfetched = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = RebalancingConsumer({fetched, unfetched}, highwater=12)
    lags: dict[TopicPartition, int] = {}
    reporter = ProgressReporter(redis, consumer, {fetched: 10}, app_id, topic,  # type: ignore[arg-type]
                                lag=lags.__setitem__)

    # Act
    await reporter.report()

    # Assert
    stored = await redis.hgetall(progress_key(app_id, topic))
    progress = {field.decode(): PartitionProgress.model_validate_json(value) for field, value in stored.items()}
    assert {name: (p.offset, p.highwater) for name, p in progress.items()} == {
        processed_field(0): (10, 12), processed_field(1): (7, 12)}
    assert lags == {fetched: 2, unfetched: 5}
