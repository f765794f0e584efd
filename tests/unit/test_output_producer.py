"""OutputProducer: sends return at once; flush waits for every record and reports a failed delivery once."""

import asyncio
from typing import Any

import pytest

from processors.output_producer import OutputProducer
from tickwire.settings import load_settings


class FakeKafkaProducer:
    """Hands out one delivery future per record, resolved by the test."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


async def test_flush_given_pending_and_failed_records_waits_for_all_and_raises_the_failure_once() -> None:
    """Test that flush confirms every record sent before it and surfaces a failed delivery exactly once."""
    # Arrange
    outputs = OutputProducer(load_settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"))
    kafka = FakeKafkaProducer()
    outputs._producer = kafka  # type: ignore[assignment]
    await outputs.send("prices", b"A", b"1")
    await outputs.send("prices", b"B", b"2")
    flushing = asyncio.create_task(outputs.flush())
    await asyncio.sleep(0)
    assert not flushing.done()  # still waiting for the broker
    # Act
    kafka.futures[0].set_result(None)
    kafka.futures[1].set_exception(RuntimeError("broker said no"))
    # Assert
    with pytest.raises(RuntimeError, match="broker said no"):
        await flushing
    await outputs.flush()  # reported once; nothing pending any more


async def test_send_many_given_records_partitions_them_as_send_would() -> None:
    """Test that each record goes to the partition aiokafka's default partitioner gives its key."""
    # Arrange
    from aiokafka.partitioner import DefaultPartitioner

    class PartitionedKafka(FakeKafkaProducer):
        def __init__(self) -> None:
            super().__init__()
            self.sent: list[tuple[bytes, int]] = []

        async def partitions_for(self, topic: str) -> set[int]:
            return {0, 1, 2, 3}

        async def send(self, topic: str, value: bytes | None, key: bytes | None = None,
                       partition: int | None = None) -> asyncio.Future[Any]:
            assert key is not None and partition is not None
            self.sent.append((key, partition))
            return await super().send(topic, value, key=key)

    outputs = OutputProducer(load_settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"))
    kafka = PartitionedKafka()
    outputs._producer = kafka  # type: ignore[assignment]
    keys = [f"S{i:03d}".encode() for i in range(20)] * 2
    # Act
    await outputs.send_many("prices", [(key, b"v") for key in keys])
    # Assert
    partitioner = DefaultPartitioner()
    assert kafka.sent == [(key, partitioner(key, [0, 1, 2, 3], [0, 1, 2, 3])) for key in keys]
