"""RawEventPublisher: a bounded queue between the Alpaca handler and Kafka, drained in batches."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from producers.raw_events import encode_raw_event
from schemas.timestamps import now_ns

log = structlog.get_logger(__name__)


@dataclass
class IngestCounters:
    """What the ingest has seen and done, by Alpaca message type."""

    received: Counter[str] = field(default_factory=Counter)
    published: Counter[str] = field(default_factory=Counter)
    overflow: int = 0
    send_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for logs and status endpoints."""
        return {
            "received": dict(self.received),
            "published": dict(self.published),
            "overflow": self.overflow,
            "send_failures": self.send_failures,
        }


class RawEventPublisher:
    """Accepts messages without blocking (``offer``) and publishes them to Kafka from its own task.

    The queue is bounded: when Kafka cannot keep up, new messages are counted as overflow and logged,
    never buffered without limit. A failed batch is retried until it is delivered.
    """

    def __init__(
        self, bootstrap_servers: list[str], queue_size: int, batch_size: int = 500, **client_options: Any
    ) -> None:
        self.queue: asyncio.Queue[tuple[dict[str, Any], int]] = asyncio.Queue(maxsize=queue_size)
        self.batch_size = batch_size
        self.counters = IngestCounters()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            linger_ms=1,
            request_timeout_ms=10_000,
            retry_backoff_ms=200,
            **client_options,  # TLS/SASL for a managed Kafka (tickwire.kafka.aiokafka_security)
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect to Kafka and start draining the queue."""
        await self._producer.start()
        self._task = asyncio.create_task(self._drain_forever(), name="raw-event-publisher")

    def offer(self, message: dict[str, Any]) -> bool:
        """Enqueue a message received now; False (and counted) if the queue is full."""
        kind = str(message.get("T"))
        self.counters.received[kind] += 1
        try:
            self.queue.put_nowait((message, now_ns()))
        except asyncio.QueueFull:
            self.counters.overflow += 1
            if self.counters.overflow in (1, 10, 100) or self.counters.overflow % 1000 == 0:
                log.warning("ingest queue full, dropping message", overflow=self.counters.overflow,
                            queue_size=self.queue.maxsize)
            return False
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Publish everything still queued (within ``timeout``), then disconnect."""
        if self._task is not None:
            try:
                await asyncio.wait_for(self.queue.join(), timeout)
            except TimeoutError:
                log.error("ingest shutdown: messages still queued were not published", left=self.queue.qsize())
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._producer.stop()

    async def _drain_forever(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await self._publish(batch)
            for _ in batch:
                self.queue.task_done()

    async def _publish(self, batch: list[tuple[dict[str, Any], int]]) -> None:
        records = [r for r in (encode_raw_event(m, ns) for m, ns in batch) if r is not None]
        delay = 0.2
        while True:
            try:
                futures = [await self._producer.send(r.topic, r.value, key=r.key) for r in records]
                await asyncio.gather(*futures)
            except KafkaError as exc:
                self.counters.send_failures += 1
                log.warning("kafka send failed, retrying batch", error=f"{type(exc).__name__}: {exc}",
                            batch=len(records), retry_in_s=delay)
                await asyncio.sleep(delay)  # backoff between retries, not synchronisation
                delay = min(delay * 2, 5.0)
                continue
            for message, _ in batch:
                self.counters.published[str(message.get("T"))] += 1
            return
