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

from tickwire.kafka import aiokafka_security, bootstrap_list
from tickwire.settings import Settings

_PARTITIONER = DefaultPartitioner()
# Bigger batches than aiokafka's 16 KiB default: while one request is in flight, the next one fills up.
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
        """Queue (key, value) records, each in the partition aiokafka's default partitioner gives its key.

        The partition of each key is computed once (keys repeat: symbols, account:symbol) and passed to
        ``send``: aiokafka's partitioner hashes in pure Python and was three quarters of the cost of a send
        (28 -> 7 us per record). Records still join the partition's open batch, so a send never waits for
        the previous request (one record batch per partition per call did, and stalled the agent when the
        broker was slow).
        """
        producer = self._producer or await self._start()
        partitions = self._partitions.get(topic)
        if partitions is None:
            partitions = self._partitions[topic] = sorted(await producer.partitions_for(topic))
        partition_of = self._partition_of
        pending, settled = self._pending, self._settled
        for key, value in records:
            partition = partition_of.get((topic, key))
            if partition is None:
                partition = partition_of[(topic, key)] = _PARTITIONER(key, partitions, partitions)
            future = await producer.send(topic, value, key=key, partition=partition)
            pending.add(future)
            future.add_done_callback(settled)

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
