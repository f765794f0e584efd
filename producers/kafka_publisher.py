"""RawEventPublisher: a bounded queue between the Alpaca handler and Kafka, drained in batches."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from producers.raw_events import KafkaRecord, encode_raw_event
from schemas.timestamps import now_ns

log = structlog.get_logger(__name__)

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0


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

    The queue is bounded: when Kafka cannot keep up (or is down), new messages are counted as overflow
    and logged, never buffered without limit; the caller learns it from ``offer``'s result (the ingest
    turns it into a gap to repair). A failed batch is retried with backoff until it is delivered, so
    publishing resumes by itself when Kafka returns. ``send_records`` is the side door for the few
    records that must not compete with live data for queue slots (gap events, backfill).
    """

    def __init__(
        self, bootstrap_servers: list[str], queue_size: int, batch_size: int = 500, **client_options: Any
    ) -> None:
        self.queue: asyncio.Queue[tuple[dict[str, Any], int]] = asyncio.Queue(maxsize=queue_size)
        self.batch_size = batch_size
        self.counters = IngestCounters()
        self.kafka_ok = True
        self._overflowing = False
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
        """Connect to Kafka (retrying while it is unreachable) and start draining the queue."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(KafkaError),
            wait=wait_exponential(multiplier=RETRY_FIRST_S, max=RETRY_MAX_S),
            before_sleep=lambda state: log.warning(
                "kafka unreachable at start-up, retrying", error=str(state.outcome.exception()),  # type: ignore[union-attr]
                attempt=state.attempt_number),
            reraise=True,
        ):
            with attempt:
                await self._producer.start()
        self._task = asyncio.create_task(self._drain_forever(), name="raw-event-publisher")

    @property
    def overflowing(self) -> bool:
        """True from a refused message until the queue accepts one again."""
        return self._overflowing

    def offer(self, message: dict[str, Any], received_ns: int | None = None) -> bool:
        """Enqueue a message (received at ``received_ns``, default now); False (and counted) if the queue is full."""
        self.counters.received[message.get("T")] += 1  # type: ignore[index]
        try:
            self.queue.put_nowait((message, now_ns() if received_ns is None else received_ns))
        except asyncio.QueueFull:
            self._on_overflow()
            return False
        if self._overflowing:
            self._overflowing = False
            log.warning("ingest queue accepting messages again", overflow_total=self.counters.overflow)
        return True

    def _on_overflow(self) -> None:
        self.counters.overflow += 1
        if not self._overflowing:
            self._overflowing = True
            log.error("ingest queue full: dropping messages (Kafka slow or unreachable); gaps will be backfilled",
                      queue_size=self.queue.maxsize, overflow_total=self.counters.overflow)
        elif self.counters.overflow % 1000 == 0:
            log.warning("ingest queue still full", overflow_total=self.counters.overflow)

    async def send_records(self, records: Sequence[KafkaRecord]) -> None:
        """Publish ``records`` now, outside the queue; retries until Kafka has them all."""
        if records:
            await self._send_until_delivered(list(records), what="records")

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
            records = [r for r in (encode_raw_event(m, ns) for m, ns in batch) if r is not None]
            await self._send_until_delivered(records, what="batch")
            for message, _ in batch:
                self.counters.published[message.get("T")] += 1  # type: ignore[index]
                self.queue.task_done()

    async def _send_until_delivered(self, records: list[KafkaRecord], what: str) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                futures = [await self._producer.send(r.topic, r.value, key=r.key) for r in records]
                await asyncio.gather(*futures)
            except KafkaError as exc:
                self.counters.send_failures += 1
                if self.kafka_ok:
                    log.error("kafka send failed; retrying until it is back", error=f"{type(exc).__name__}: {exc}",
                              what=what, records=len(records))
                self.kafka_ok = False
                await asyncio.sleep(delay)  # backoff between retries, not synchronisation
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            if not self.kafka_ok:
                self.kafka_ok = True
                log.warning("kafka sends succeed again", send_failures=self.counters.send_failures)
            return
