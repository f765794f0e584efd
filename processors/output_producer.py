"""OutputProducer: the processor's output records, sent in multi-record batches and confirmed before each commit.

Faust's own producer must send one record per Kafka batch (on Tansu, table recovery from a changelog of
multi-record batches stops early; see the README), and that caps every send of the worker at a few
hundred records/s. Only table changelogs need it. Outputs (``prices``, ``pnl``, dead letters, control
requests) go through this plain aiokafka producer instead, batched.

Agents do not wait for each batch's outputs to be acknowledged (that round trip would sit in every
batch's latency). Faust flushes its producer before it commits consumer offsets; ``flush`` is chained
to that (see processors/clients.py), so offsets are committed only once every output sent before them is
acknowledged, and a failed delivery fails the commit: delivery stays at-least-once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from tickwire.kafka import aiokafka_security, bootstrap_list
from tickwire.settings import Settings

_PARTITIONER = DefaultPartitioner()
# Bigger batches than aiokafka's 16 KiB default: a batch of a few hundred revaluations is one record batch.
MAX_BATCH_BYTES = 512 * 1024


class OutputProducer:
    """One batched aiokafka producer per worker process. Starts on first use (the worker's loop must run)."""

    def __init__(self, settings: Settings, linger_ms: float = 0.0) -> None:
        self._settings = settings
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Future[object]] = set()
        self._failures: list[BaseException] = []
        self._partitions: dict[str, list[int]] = {}
        self._partition_of: dict[tuple[str, bytes], int] = {}  # keys repeat: symbols, account:symbol

    async def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Queue one record (``value`` None is a tombstone); ``flush`` confirms it."""
        producer = self._producer or await self._start()
        future = await producer.send(topic, value, key=key)
        self._pending.add(future)
        future.add_done_callback(self._settled)

    async def send_many(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> None:
        """Queue (key, value) records as one batch per partition: a third of the CPU of one ``send`` each.

        Partitions are chosen exactly as ``send`` chooses them (aiokafka's default partitioner on the key),
        so co-partitioning with the inputs is kept; each key's partition is computed once.
        """
        producer = self._producer or await self._start()
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        batches: dict[int, list[BatchBuilder]] = {}
        for key, value in records:
            partition = self._partition_of.get((topic, key))
            if partition is None:
                partition = self._partition_of[(topic, key)] = _PARTITIONER(key, partitions, partitions)
            builders = batches.get(partition)
            if builders is None:
                builders = batches[partition] = [producer.create_batch()]
            if builders[-1].append(key=key, value=value, timestamp=None) is None:  # full: start another
                builders.append(producer.create_batch())
                builders[-1].append(key=key, value=value, timestamp=None)
        for partition, builders in batches.items():
            for builder in builders:
                future = await producer.send_batch(builder, topic, partition=partition)
                self._pending.add(future)
                future.add_done_callback(self._settled)

    async def flush(self) -> None:
        """Wait for every record sent so far; raise if any of them (since the last flush) was not delivered."""
        if self._pending:
            await asyncio.wait(list(self._pending))
        failures, self._failures = self._failures, []
        if failures:
            raise failures[0]

    async def stop(self) -> None:
        """Deliver what is queued and disconnect."""
        if self._producer is not None:
            await self.flush()
            await self._producer.stop()
            self._producer = None

    def _settled(self, future: asyncio.Future[object]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self._failures.append(future.exception())  # type: ignore[arg-type]

    async def _start(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                assert self._settings.kafka_bootstrap_servers
                producer = AIOKafkaProducer(
                    bootstrap_servers=bootstrap_list(self._settings.kafka_bootstrap_servers),
                    acks="all",
                    linger_ms=self._linger_ms,
                    max_batch_size=MAX_BATCH_BYTES,
                    **aiokafka_security(self._settings),
                )
                await producer.start()
                self._producer = producer
        return self._producer
