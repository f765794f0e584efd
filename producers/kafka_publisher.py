"""RawEventPublisher: a bounded queue between the Alpaca handler and Kafka, drained in batches."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from producers.raw_events import KafkaRecord, encode_raw_event, format_ns_fast
from schemas.timestamps import now_ns
from tickwire.logging import quiet_library_logs

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
    """A bounded buffer between the Alpaca stream and Kafka, drained in batches by its own task.

    The stream's hot path hands over whole frames (:meth:`put`, after asking :meth:`room`); single
    messages go through :meth:`offer`. The bound counts messages, in flight to Kafka included: when
    Kafka cannot keep up (or is down) new messages are refused, counted as overflow and logged, never
    buffered without limit (the ingest turns refusals into a gap to repair). A failed batch is retried
    with backoff until delivered, so publishing resumes by itself when Kafka returns. ``send_records``
    is the side door for the few records that must not compete with live data for room (gap events,
    backfill).
    """

    def __init__(
        self,
        bootstrap_servers: list[str],
        queue_size: int,
        batch_size: int = 500,
        *,
        topics: Mapping[str, str],
        **client_options: Any,
    ) -> None:
        self.capacity = queue_size
        self.topics = topics  # message letter -> raw topic: the feed source's routing
        self._bootstrap_servers = bootstrap_servers
        self.depth = 0  # messages buffered or in flight
        self.batch_size = batch_size
        self.counters = IngestCounters()
        self.kafka_ok = True
        self._overflowing = False
        self._frames: deque[tuple[list[dict[str, Any]], int]] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            # No linger: a feed frame's messages join one batch anyway (they are appended before the sender
            # runs), and 1 ms of linger cost 1.5 ms at p50 from ingest to processor (docs/performance.md).
            linger_ms=0,
            request_timeout_ms=10_000,
            retry_backoff_ms=200,
            **client_options,  # TLS/SASL for a managed Kafka (tickwire.kafka.aiokafka_security)
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect to Kafka (retrying while it is unreachable) and start draining."""
        bootstrap_servers = self._bootstrap_servers
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(KafkaError),
            wait=wait_exponential(multiplier=RETRY_FIRST_S, max=RETRY_MAX_S),
            before_sleep=lambda state: log.warning(
                f"waiting for Kafka at {','.join(bootstrap_servers)} (KAFKA_BOOTSTRAP_SERVERS), retrying",
                error=str(_error(state)), attempt=state.attempt_number),
            reraise=True,
        ):
            with attempt, quiet_library_logs("aiokafka"):  # the line above says it all, once per attempt
                await self._producer.start()
        self._task = asyncio.create_task(self._drain_forever(), name="raw-event-publisher")

    @property
    def overflowing(self) -> bool:
        """True from a refused message until a message is accepted again."""
        return self._overflowing

    def room(self) -> int:
        """How many more messages fit now."""
        return self.capacity - self.depth

    def put(self, messages: list[dict[str, Any]], received_ns: int) -> None:
        """Buffer messages received at ``received_ns`` that fit (the caller checked :meth:`room`)."""
        if not messages:
            return
        self._frames.append((messages, received_ns))
        self.depth += len(messages)
        self._idle.clear()
        self._wakeup.set()
        if self._overflowing:
            self._overflowing = False
            log.warning("ingest queue accepting messages again", overflow_total=self.counters.overflow)

    def refuse(self) -> None:
        """Count one message that did not fit (logged on the first one of an overflow, then every 1000)."""
        self.counters.overflow += 1
        if not self._overflowing:
            self._overflowing = True
            log.error("ingest queue full: dropping messages (Kafka slow or unreachable); gaps will be backfilled",
                      queue_size=self.capacity, overflow_total=self.counters.overflow)
        elif self.counters.overflow % 1000 == 0:
            log.warning("ingest queue still full", overflow_total=self.counters.overflow)

    def offer(self, message: dict[str, Any], received_ns: int | None = None) -> bool:
        """Buffer one message (received at ``received_ns``, default now); False (and counted) if full."""
        self.counters.received[message.get("T")] += 1  # type: ignore[index]
        if self.depth >= self.capacity:
            self.refuse()
            return False
        self.put([message], now_ns() if received_ns is None else received_ns)
        return True

    async def send_records(self, records: Sequence[KafkaRecord]) -> None:
        """Publish ``records`` now, outside the buffer; retries until Kafka has them all."""
        if records:
            await self._send_until_delivered(list(records), what="records")

    async def close(self, timeout: float = 5.0) -> None:
        """Publish everything still buffered (within ``timeout``), then disconnect."""
        if self._task is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self._idle.wait()
            except TimeoutError:
                log.error("ingest shutdown: messages still queued were not published", left=self.depth)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._producer.stop()

    async def _drain_forever(self) -> None:
        while True:
            if not self._frames:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            frames = [self._frames.popleft()]
            size = len(frames[0][0])
            while self._frames and size < self.batch_size:
                frames.append(self._frames.popleft())
                size += len(frames[-1][0])
            records = []
            topics = self.topics
            for messages, received_ns in frames:
                received_at = format_ns_fast(received_ns)  # once per frame
                records += [r for r in (encode_raw_event(m, received_ns, received_at, topics) for m in messages)
                            if r]
            await self._send_until_delivered(records, what="batch")
            published = self.counters.published
            for messages, _ in frames:
                for message in messages:
                    published[message.get("T")] += 1  # type: ignore[index]
            self.depth -= size

    async def _send_until_delivered(self, records: list[KafkaRecord], what: str) -> None:
        """Send ``records``; after a failure retry (at once, then backing off from 0.2 s to 5 s) until Kafka
        has them all. The first try goes without tenacity: its machinery costs tens of microseconds a
        call, which every batch would pay on its way to Kafka."""
        try:
            await self._send(records)
        except KafkaError as exc:
            self._send_failed(exc, what, len(records))
            await AsyncRetrying(
                retry=retry_if_exception_type(KafkaError),
                wait=wait_exponential(multiplier=RETRY_FIRST_S, max=RETRY_MAX_S),
                before_sleep=lambda state: self._send_failed(_error(state), what, len(records)),
                reraise=True,
            )(self._send, records)
        if not self.kafka_ok:
            self.kafka_ok = True
            log.warning("kafka sends succeed again", send_failures=self.counters.send_failures)

    async def _send(self, records: list[KafkaRecord]) -> None:
        futures = [await self._producer.send(r.topic, r.value, key=r.key) for r in records]
        await asyncio.gather(*futures)

    def _send_failed(self, exc: BaseException | None, what: str, count: int) -> None:
        """Count a failed send; say it once per outage."""
        self.counters.send_failures += 1
        if self.kafka_ok:
            log.error("kafka send failed; retrying until it is back", error=f"{type(exc).__name__}: {exc}",
                      what=what, records=count)
        self.kafka_ok = False


def _error(state: RetryCallState) -> BaseException | None:
    """The exception of the attempt tenacity just judged."""
    return state.outcome.exception() if state.outcome is not None else None
