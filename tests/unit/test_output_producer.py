"""OutputProducer: sends return at once; flush waits for every record and reports a failed delivery once."""

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka.errors import KafkaError, KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner

from tests.helpers import eventually
from tickwire.runtime.outputs import OutputProducer
from tickwire.settings import TickwireSettings

PARTITIONS = [0, 1, 2, 3]
Record = tuple[bytes | None, bytes | None]


class FakeBuilder:
    """Holds up to ``capacity`` records; ``append`` returns None once full, as aiokafka's BatchBuilder does."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[Record] = []

    def append(self, *, timestamp: float | None, key: bytes | None, value: bytes | None) -> object | None:
        if len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()


class FakeKafka:
    """AIOKafkaProducer's batch API: one delivery future per batch, acknowledged at once unless ``ack`` is off.

    ``holds[n]`` makes the n-th ``send_batch`` call wait for that event, as aiokafka's waits while the
    partition's previous batch is still queued; ``fail_next`` makes the next call raise.
    """

    def __init__(self, capacity: int = 1_000, ack: bool = True) -> None:
        self.capacity = capacity
        self.ack = ack
        self.holds: dict[int, asyncio.Event] = {}
        self.fail_next: Exception | None = None
        self.calls = 0
        self.batches: list[tuple[str, int, list[Record]]] = []  # in the order send_batch took them
        self.deliveries: list[asyncio.Future[Any]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(PARTITIONS)

    def create_batch(self) -> FakeBuilder:
        return FakeBuilder(self.capacity)

    async def send_batch(self, batch: FakeBuilder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        call, self.calls = self.calls, self.calls + 1
        if call in self.holds:
            await self.holds[call].wait()
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error
        self.batches.append((topic, partition, batch.records))
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.ack:
            delivery.set_result(None)
        self.deliveries.append(delivery)
        return delivery

    def shipped(self, partition: int | None = None) -> list[Record]:
        """Every record shipped (to ``partition``), in shipping order."""
        return [r for _, p, records in self.batches if partition in (None, p) for r in records]


def producer_with(kafka: FakeKafka) -> OutputProducer:
    outputs = OutputProducer(TickwireSettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"))
    outputs._producer = kafka  # type: ignore[assignment]
    return outputs


def partition_of(key: bytes) -> int:
    return DefaultPartitioner()(key, PARTITIONS, PARTITIONS)


async def until(condition: Callable[[], bool], what: str) -> None:
    async def check() -> bool:
        return condition()

    await eventually(check, 5, what)


async def let_run() -> None:
    """Give every ready task a few turns (to show that something does not happen)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_flush_given_pending_and_failed_records_waits_for_all_and_raises_the_failure_once() -> None:
    """Test that flush confirms every record sent before it and surfaces a failed delivery exactly once."""
    # Arrange
    kafka = FakeKafka(capacity=1, ack=False)
    outputs = producer_with(kafka)
    await outputs.send("prices", b"A", b"1")
    await outputs.send("prices", b"B", b"2")
    flushing = asyncio.create_task(outputs.flush())
    await until(lambda: len(kafka.deliveries) == 2, "both batches shipped")
    await let_run()
    assert not flushing.done()  # still waiting for the broker
    # Act
    kafka.deliveries[0].set_result(None)
    kafka.deliveries[1].set_exception(RuntimeError("broker said no"))
    # Assert
    with pytest.raises(RuntimeError, match="broker said no"):
        await flushing
    await outputs.flush()  # reported once; nothing pending any more


async def test_send_many_given_records_and_a_tombstone_puts_each_in_its_key_partition_in_order() -> None:
    """Test that each record goes to the partition aiokafka's default partitioner gives its key, in send order."""
    # Arrange
    kafka = FakeKafka()
    outputs = producer_with(kafka)
    records: list[Record] = [(f"S{i:03d}".encode(), f"v{n}".encode()) for n in range(2) for i in range(20)]
    # Act
    await outputs.send_many("prices", records)
    await outputs.send("prices", b"S007", None)
    await outputs.flush()
    # Assert
    records.append((b"S007", None))
    assert {p for _, p, _ in kafka.batches} == {partition_of(k) for k, _ in records if k}
    for partition in PARTITIONS:
        assert kafka.shipped(partition) == [r for r in records if r[0] and partition_of(r[0]) == partition]


async def test_send_many_given_full_builders_while_a_batch_is_held_keeps_the_partition_order() -> None:
    """Test that records of one partition fill several builders and are shipped in the order they were sent."""
    # Arrange: builders of 3 records; the first batch is held, so the rest pile up behind it
    kafka = FakeKafka(capacity=3)
    held = kafka.holds[0] = asyncio.Event()
    outputs = producer_with(kafka)
    records: list[Record] = [(b"AAPL", f"{n}".encode()) for n in range(20)]
    # Act
    for start in range(0, 20, 5):
        await outputs.send_many("prices", records[start:start + 5])
    held.set()
    await asyncio.wait_for(outputs.flush(), 5)
    # Assert
    assert kafka.shipped() == records
    assert len(kafka.batches) > 2
    assert all(p == partition_of(b"AAPL") and 0 < len(batch) <= 3 for _, p, batch in kafka.batches)


async def test_send_many_given_the_partition_previous_batch_still_queued_returns_at_once() -> None:
    """Test that a send never waits for the broker to take the partition's previous batch."""
    # Arrange
    kafka = FakeKafka()
    held = kafka.holds[0] = asyncio.Event()
    outputs = producer_with(kafka)
    await outputs.send_many("pnl", [(b"acct:AAPL", b"1")])
    await until(lambda: kafka.calls == 1, "the first batch handed to send_batch")
    # Act: send_batch is stuck on the first batch
    await asyncio.wait_for(outputs.send_many("pnl", [(b"acct:AAPL", b"2"), (b"acct:AAPL", b"3")]), 1)
    flushing = asyncio.create_task(outputs.flush())
    await let_run()
    # Assert
    assert not flushing.done() and kafka.batches == []
    held.set()
    await asyncio.wait_for(flushing, 5)
    assert [len(batch) for _, _, batch in kafka.batches] == [1, 2]  # the later records made one batch
    assert kafka.shipped() == [(b"acct:AAPL", b"1"), (b"acct:AAPL", b"2"), (b"acct:AAPL", b"3")]


async def test_flush_given_records_sent_after_it_started_does_not_wait_for_them() -> None:
    """Test that flush waits only for records sent before it, so steady sending cannot hold it forever."""
    # Arrange
    kafka = FakeKafka()
    first, second = kafka.holds[0], kafka.holds[1] = asyncio.Event(), asyncio.Event()
    outputs = producer_with(kafka)
    await outputs.send("prices", b"AAPL", b"1")
    await until(lambda: kafka.calls == 1, "the first batch handed to send_batch")
    flushing = asyncio.create_task(outputs.flush())
    await let_run()  # the flush has begun waiting
    await outputs.send("prices", b"AAPL", b"2")  # a new builder: the first one is being shipped
    # Act
    first.set()
    # Assert
    await asyncio.wait_for(flushing, 5)
    assert kafka.shipped() == [(b"AAPL", b"1")]
    second.set()
    await asyncio.wait_for(outputs.flush(), 5)
    assert kafka.shipped() == [(b"AAPL", b"1"), (b"AAPL", b"2")]


async def test_flush_given_send_batch_failed_in_the_shipping_task_raises_it_once() -> None:
    """Test that a batch aiokafka would not take (e.g. timed out behind a stuck one) fails the next flush."""
    # Arrange
    kafka = FakeKafka()
    kafka.fail_next = KafkaTimeoutError()
    outputs = producer_with(kafka)
    await outputs.send_many("prices", [(b"AAPL", b"1")])
    # Act / Assert
    with pytest.raises(KafkaTimeoutError):
        await asyncio.wait_for(outputs.flush(), 5)
    await outputs.flush()  # reported once
    await outputs.send_many("prices", [(b"AAPL", b"2")])  # the partition still ships afterwards
    await asyncio.wait_for(outputs.flush(), 5)
    assert kafka.shipped() == [(b"AAPL", b"2")]


async def test_flush_given_a_cancelled_shipping_task_reports_its_batches_lost() -> None:
    """Test that batches a shipping task could not hand over (it was cancelled) fail the next flush."""
    # Arrange
    kafka = FakeKafka()
    kafka.holds[0] = asyncio.Event()
    outputs = producer_with(kafka)
    await outputs.send_many("prices", [(b"AAPL", b"1")])
    await until(lambda: kafka.calls == 1, "the batch handed to send_batch")
    # Act
    for task in asyncio.all_tasks():
        if task.get_name().startswith("ship prices"):
            task.cancel()
    # Assert
    with pytest.raises(KafkaError, match="1 batches not sent"):
        await asyncio.wait_for(outputs.flush(), 5)
    await outputs.send_many("prices", [(b"AAPL", b"2")])  # a new shipping task takes over
    await asyncio.wait_for(outputs.flush(), 5)
    assert kafka.shipped() == [(b"AAPL", b"2")]
