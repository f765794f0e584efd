"""BrokerGateway: the API's Kafka connection (a producer for control and position records, probes, lag).

Connections are made on first use and re-made after a failure, so the service starts and keeps running
while the broker is down; callers get :class:`ServiceUnavailable` (HTTP 503) with a one-line reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from consumers.api.errors import ServiceUnavailable, one_line
from tickwire.kafka import READ_ISOLATION, bootstrap_list

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class BrokerProbe:
    """Result of one reachability probe."""

    ok: bool
    detail: str


@dataclass(frozen=True)
class OutgoingRecord:
    """One record to publish: topic, key and JSON value."""

    topic: str
    key: str
    value: bytes


def total_lag(committed: Mapping[TopicPartition, int], end: Mapping[TopicPartition, int]) -> int:
    """Messages not yet consumed over the partitions a group has committed (never negative per partition)."""
    return sum(max(0, end.get(tp, offset) - offset) for tp, offset in committed.items())


class BrokerGateway:
    """Lazily connected producer and admin client for ``bootstrap`` (None: no broker configured).

    ``client_options`` are the TLS/SASL keyword arguments of every aiokafka client (``aiokafka_security``).
    """

    def __init__(self, bootstrap: str | None, processor_group: str, client_options: Mapping[str, Any] | None = None,
                 timeout_s: float = 5.0) -> None:
        self.bootstrap = bootstrap_list(bootstrap) if bootstrap else None
        self.client_options = dict(client_options or {})
        self.processor_group = processor_group
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()

    async def publish(self, records: Sequence[OutgoingRecord]) -> None:
        """Publish records and wait until the broker acknowledged all of them (or raise ServiceUnavailable)."""
        producer = await self._started_producer()
        try:
            async with asyncio.timeout(self.timeout_s):
                futures = [await producer.send(r.topic, r.value, key=r.key.encode()) for r in records]
                await asyncio.gather(*futures)
        except (KafkaError, TimeoutError, OSError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else one_line(exc)
            log.warning("publish failed", error=reason, records=len(records))
            raise ServiceUnavailable(f"broker unavailable: publish failed ({reason})") from exc

    async def probe(self) -> BrokerProbe:
        """Ask the broker for its cluster metadata (2 s at most)."""
        if not self.bootstrap:
            return BrokerProbe(False, "KAFKA_BOOTSTRAP_SERVERS is not set")
        try:
            await self._tcp_reachable()
            admin = await self._started_admin()
            async with asyncio.timeout(2.0):
                await admin.describe_cluster()
        except (KafkaError, TimeoutError, OSError) as exc:
            await self._drop_admin()
            return BrokerProbe(False, f"unreachable: {'timed out' if isinstance(exc, TimeoutError) else one_line(exc)}")
        return BrokerProbe(True, "")

    async def consumer_lag(self) -> int | str:
        """The processor group's lag in messages, or a sentence saying why it is unknown."""
        try:
            admin = await self._started_admin()
            async with asyncio.timeout(self.timeout_s):
                offsets = await admin.list_consumer_group_offsets(self.processor_group)
                committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
                if not committed:
                    return f"unknown (group {self.processor_group!r} has no committed offsets)"
                return total_lag(committed, await self._end_offsets(list(committed)))
        except (KafkaError, TimeoutError, OSError) as exc:
            return f"unknown ({'timed out' if isinstance(exc, TimeoutError) else one_line(exc)})"

    async def close(self) -> None:
        """Flush and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        await self._drop_admin()

    async def _end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    isolation_level=READ_ISOLATION, **self.client_options)
        await consumer.start()
        try:
            return await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()

    async def _tcp_reachable(self) -> None:
        # A plain connect first: a dead broker fails fast, and aiokafka logs an ERROR per refused connect.
        host, _, port = self.bootstrap[0].rpartition(":")  # type: ignore[index]
        async with asyncio.timeout(1.0):
            _, writer = await asyncio.open_connection(host, int(port))
        writer.close()
        await writer.wait_closed()

    async def _started_producer(self) -> AIOKafkaProducer:
        if not self.bootstrap:
            raise ServiceUnavailable("broker not configured: KAFKA_BOOTSTRAP_SERVERS is not set")
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
                                            request_timeout_ms=int(self.timeout_s * 1000), retry_backoff_ms=200,
                                            **self.client_options)
                try:
                    await self._tcp_reachable()
                    async with asyncio.timeout(self.timeout_s):
                        await producer.start()
                except (KafkaError, TimeoutError, OSError) as exc:
                    await producer.stop()
                    reason = "timed out" if isinstance(exc, TimeoutError) else one_line(exc)
                    raise ServiceUnavailable(f"broker unavailable: {reason}") from exc
                self._producer = producer
            return self._producer

    async def _started_admin(self) -> AIOKafkaAdminClient:
        async with self._lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000,
                                            **self.client_options)
                try:
                    async with asyncio.timeout(self.timeout_s):
                        await admin.start()
                except BaseException:
                    await admin.close()
                    raise
                self._admin = admin
            return self._admin

    async def _drop_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                await admin.close()
            except (KafkaError, OSError) as exc:
                log.debug("admin close failed", error=one_line(exc))
