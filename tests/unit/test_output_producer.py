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
    """Test that batched records land in the partition aiokafka's default partitioner gives their key."""
    # Arrange
    from aiokafka.partitioner import DefaultPartitioner

    class BatchingKafka(FakeKafkaProducer):
        def __init__(self) -> None:
            super().__init__()
            self.sent: list[tuple[int, list[bytes]]] = []

        async def partitions_for(self, topic: str) -> set[int]:
            return {0, 1, 2, 3}

        def create_batch(self) -> Any:
            keys: list[bytes] = []

            class Builder:
                def append(self, key: bytes, value: bytes, timestamp: None) -> object:
                    keys.append(key)
                    return object()

            builder = Builder()
            builder.keys = keys  # type: ignore[attr-defined]
            return builder

        async def send_batch(self, builder: Any, topic: str, partition: int) -> asyncio.Future[Any]:
            self.sent.append((partition, builder.keys))
            return await self.send(topic, None)

    outputs = OutputProducer(load_settings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1"))
    kafka = BatchingKafka()
    outputs._producer = kafka  # type: ignore[assignment]
    keys = [f"S{i:03d}".encode() for i in range(20)] * 2
    # Act
    await outputs.send_many("prices", [(key, b"v") for key in keys])
    # Assert
    expected = {key: DefaultPartitioner()(key, [0, 1, 2, 3], [0, 1, 2, 3]) for key in keys}
    assert sorted(key for _, batch in kafka.sent for key in batch) == sorted(keys)
    assert all(expected[key] == partition for partition, batch in kafka.sent for key in batch)
    assert len(kafka.sent) == len(set(expected.values()))  # one batch per partition
