"""SubscriptionRequestReader: follows the ``subscriptions`` control topic from its beginning."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, retry_if_result, stop_after_delay, wait_exponential

from schemas.events import SubscriptionRequest
from schemas.topics import SUBSCRIPTIONS
from tickwire.kafka import READ_ISOLATION

log = structlog.get_logger(__name__)

Handler = Callable[[SubscriptionRequest], Awaitable[None]]


class SubscriptionRequestReader:
    """Reads every request ever sent (no consumer group, from offset 0), so the set survives restarts.

    :meth:`catch_up` applies the history before the ingest connects; :meth:`run` then follows new
    requests. Undecodable records are logged and skipped.
    """

    def __init__(
        self, bootstrap_servers: list[str], handle: Handler, topic: str = SUBSCRIPTIONS.name, **client_options: Any
    ) -> None:
        self._handle = handle
        self.topic = topic
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=200,
            isolation_level=READ_ISOLATION,  # the P&L stage writes it, in transactions under exactly once
            **client_options,  # TLS/SASL for a managed Kafka (tickwire.kafka.aiokafka_security)
        )
        self.applied = 0

    async def start(self) -> None:
        """Connect (retrying while Kafka is unreachable) and subscribe to the control topic."""
        async for attempt in AsyncRetrying(retry=retry_if_exception_type(KafkaError),
                                           wait=wait_exponential(multiplier=0.2, max=5.0), reraise=True):
            with attempt:
                await self._consumer.start()
        self._consumer.subscribe([self.topic])

    async def catch_up(self, timeout: float) -> bool:
        """Apply the topic's history; True once every partition is read to the high watermark its fetches
        report, False (with a warning) if ``timeout`` passes first. Never cut short inside a fetch: its
        records are applied before the clock is checked."""
        caught_up: bool = await AsyncRetrying(
            retry=retry_if_result(lambda done: not done),
            stop=stop_after_delay(timeout),
            retry_error_callback=lambda state: False,
        )(self._poll_then_check)
        if caught_up:
            log.info("subscription requests caught up", applied=self.applied)
        else:
            log.warning("subscription history not fully read in time; continuing with what was read",
                        applied=self.applied, timeout_s=timeout)
        return caught_up

    async def run(self) -> None:
        """Follow new requests forever."""
        while True:
            await self._poll(1000)

    async def stop(self) -> None:
        """Disconnect."""
        await self._consumer.stop()

    async def _poll_then_check(self) -> bool:
        await self._poll(200)
        return await self._caught_up()

    async def _caught_up(self) -> bool:
        partitions = self._consumer.assignment()
        if not partitions:
            return False
        for tp in partitions:
            highwater = self._consumer.highwater(tp)
            if highwater is None or await self._consumer.position(tp) < highwater:
                return False
        return True

    async def _poll(self, timeout_ms: int) -> None:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        for records in batches.values():
            for record in records:
                try:
                    request = SubscriptionRequest.model_validate_json(record.value or b"")
                except ValidationError as exc:
                    log.warning("subscription request skipped: not a SubscriptionRequest",
                                offset=record.offset, partition=record.partition,
                                error=exc.errors(include_url=False)[:1])
                    continue
                self.applied += 1
                await self._handle(request)
