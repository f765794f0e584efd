"""OutputProducer: a stage's output records, sent in multi-record batches and confirmed before each commit.

Records are batched by hand: ``AIOKafkaProducer.send`` costs about 7 us per record (metadata wait, a
future per record, each resolved on delivery), appending to an aiokafka ``BatchBuilder`` about 1.2 us.
Sends append to their partition's open builder synchronously; a shipping task per partition hands the
builders, in order, to ``send_batch``. That waits while the partition's previous batch is still queued in
aiokafka (one batch per partition per request, none while a request is in flight), so only the shipping
task ever awaits it: a send never blocks, and records that arrive meanwhile grow the next batch.

Stages do not wait for each batch's outputs to be acknowledged (that round trip would sit in every
batch's latency). The batch consumer calls ``flush`` before it commits offsets
(:mod:`tickwire.runtime.member`), so offsets are committed only once every output sent before them is
acknowledged, and a failed delivery (or a batch aiokafka would not take) fails the commit: delivery
stays at-least-once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from tickwire.kafka import aiokafka_security, bootstrap_list
from tickwire.settings import TickwireSettings

if TYPE_CHECKING:
    from tickwire.kafka import BatchBuilder

_PARTITIONER = DefaultPartitioner()
# Bigger batches than aiokafka's 16 KiB default: while one request is in flight, the next one fills up.
MAX_BATCH_BYTES = 512 * 1024


class _Lane:
    """One partition's builders (oldest first, the last one open) and the task that ships them, in order."""

    __slots__ = ("builders", "created", "partition", "shipped", "shipper", "topic", "waiters")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.builders: deque[BatchBuilder] = deque()
        self.created = 0  # builders ever opened; a flush waits until this many are shipped
        self.shipped = 0
        self.shipper: asyncio.Task[None] | None = None
        self.waiters: list[tuple[int, asyncio.Future[None]]] = []

    def shipped_up_to(self, count: int) -> asyncio.Future[None]:
        """A future set once the first ``count`` builders are shipped (handed to aiokafka or failed)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append((count, waiter))
        return waiter

    def count_shipped(self, count: int = 1) -> None:
        self.shipped += count
        if self.waiters:
            waiting = []
            for target, waiter in self.waiters:
                if target > self.shipped:
                    waiting.append((target, waiter))
                elif not waiter.done():
                    waiter.set_result(None)
            self.waiters = waiting


class Outputs(Protocol):
    """Where a stage sends its records: the batched producer live, a run's own topics in a replay."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition_key: bytes | None = None
                   ) -> None:
        """Queue one record (``partition_key``: hash this instead of ``key`` to choose the partition)."""

    async def send_many(self, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Queue (key, value) records."""

    async def flush(self) -> None:
        """Wait for every record sent so far; raise if one was not delivered."""


class OutputProducer:
    """One batched aiokafka producer per worker process. Starts on first use (the worker's loop must run)."""

    def __init__(self, settings: TickwireSettings, linger_ms: float = 0.0) -> None:
        self._settings = settings
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Future[object]] = set()
        self._failures: list[BaseException] = []
        self._partitions: dict[str, list[int]] = {}
        self._lanes: dict[tuple[str, int], _Lane] = {}
        self._lane_of: dict[str, dict[bytes | None, _Lane]] = {}  # keys repeat: symbols, account:symbol
        self._epoch = 0  # bumped by discard_queued: a builder taken before it is not sent

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition_key: bytes | None = None
                   ) -> None:
        """Queue one record (``value`` None is a tombstone); ``flush`` confirms it. ``partition_key``: hash this
        instead of ``key`` to choose the partition (a compacted topic keyed finer than it is partitioned)."""
        producer = self._producer or await self._start()
        lane = self._lane(topic, key if partition_key is None else partition_key, await self._partitions_of(topic))
        self._append(lane, producer, key, value)

    async def send_many(self, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Queue (key, value) records, each in the partition aiokafka's default partitioner gives its key.

        Returns without waiting for the broker (only the first call per topic awaits metadata). The
        partition of each key is computed once: aiokafka's partitioner hashes in pure Python.
        """
        producer = self._producer or await self._start()
        partitions = await self._partitions_of(topic)
        lane_of = self._lane_of.setdefault(topic, {})
        append = self._append
        for key, value in records:
            append(lane_of.get(key) or self._lane(topic, key, partitions), producer, key, value)

    async def flush(self) -> None:
        """Wait for every record sent so far; raise if any of them (since the last flush) was not delivered."""
        shipping = [lane.shipped_up_to(lane.created) for lane in self._lanes.values() if lane.shipped < lane.created]
        if shipping:
            await asyncio.wait(shipping)
        await self._delivered()

    async def stop(self) -> None:
        """Deliver what is queued and disconnect."""
        if self._producer is not None:
            await self.flush()
            await self._producer.stop()
            self._producer = None

    def discard_queued(self) -> None:
        """Drop every record queued and not yet handed to aiokafka (an aborted transaction's leftovers)."""
        self._epoch += 1
        for lane in self._lanes.values():
            dropped = len(lane.builders)
            lane.builders.clear()
            if dropped:
                lane.count_shipped(dropped)

    async def _partitions_of(self, topic: str) -> list[int]:
        partitions = self._partitions.get(topic)
        if partitions is None:
            assert self._producer is not None
            partitions = self._partitions[topic] = sorted(await self._producer.partitions_for(topic))
        return partitions

    def _lane(self, topic: str, key: bytes | None, partitions: list[int]) -> _Lane:
        """The lane of the partition ``key`` hashes to (remembered per key: keys repeat)."""
        lane_of = self._lane_of.setdefault(topic, {})
        lane = lane_of.get(key) if key is not None else None
        if lane is not None:
            return lane
        partition = _PARTITIONER(key, partitions, partitions)  # a None key gets a random partition, as in aiokafka
        lane = self._lanes.get((topic, partition))
        if lane is None:
            lane = self._lanes[(topic, partition)] = _Lane(topic, partition)
        if key is not None:
            lane_of[key] = lane
        return lane

    def _append(self, lane: _Lane, producer: AIOKafkaProducer, key: bytes | None, value: bytes | None) -> None:
        builders = lane.builders
        if not builders or builders[-1].append(timestamp=None, key=key, value=value) is None:
            self._open_builder(lane, producer).append(timestamp=None, key=key, value=value)

    def _open_builder(self, lane: _Lane, producer: AIOKafkaProducer) -> BatchBuilder:
        """A new open builder for ``lane`` (the previous one, if any, is full), and a shipping task if none runs."""
        builder = producer.create_batch()
        lane.builders.append(builder)
        lane.created += 1
        if lane.shipper is None:
            lane.shipper = asyncio.create_task(self._ship(lane, producer), name=f"ship {lane.topic}[{lane.partition}]")
        return builder

    async def _ship(self, lane: _Lane, producer: AIOKafkaProducer) -> None:
        """Hand the lane's builders to aiokafka in order until none is left; failures go to the next flush."""
        builders = lane.builders
        try:
            while builders:
                builder = builders.popleft()  # new records start a fresh builder while this one waits
                epoch = self._epoch
                try:
                    await self._entering_send()
                    if epoch != self._epoch:  # discarded while it waited
                        self._left_send()
                        lane.count_shipped()
                        continue
                    try:
                        delivery = await producer.send_batch(builder, lane.topic, partition=lane.partition)
                    finally:
                        self._left_send()
                except Exception as exc:  # e.g. KafkaTimeoutError: the previous batch was not drained in time
                    self._failures.append(exc)
                else:
                    self._pending.add(delivery)
                    delivery.add_done_callback(self._settled)
                lane.count_shipped()
        finally:
            lane.shipper = None
            unshipped = lane.created - lane.shipped
            if unshipped:  # only when cancelled: those records are lost, so the next flush must fail
                builders.clear()
                self._failures.append(KafkaError(f"{lane.topic}[{lane.partition}]: {unshipped} batches not sent"))
                lane.count_shipped(unshipped)

    async def _entering_send(self) -> None:
        """Called before each batch goes to aiokafka (a transactional producer waits here while it commits)."""

    def _left_send(self) -> None:
        """Called once aiokafka has taken (or refused) the batch."""

    async def _delivered(self) -> None:
        """Wait for the deliveries of every batch handed to aiokafka so far; raise the first failure."""
        if self._pending:
            await asyncio.wait(list(self._pending))
        failures, self._failures = self._failures, []
        if failures:
            raise failures[0]

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
                    **self._producer_options(),
                    **aiokafka_security(self._settings),
                )
                try:
                    await producer.start()
                except BaseException:
                    with contextlib.suppress(Exception):  # a refused start still owns a client to close
                        await producer.stop()
                    raise
                self._producer = producer
        return self._producer

    def _producer_options(self) -> dict[str, object]:
        """Extra AIOKafkaProducer options (a transactional producer adds its id)."""
        return {}
