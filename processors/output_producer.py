"""OutputProducer: the processor's output records, sent in multi-record batches and awaited per input batch.

Faust's own producer must send one record per Kafka batch (on Tansu, table recovery from a changelog of
multi-record batches stops early; see the README), and that caps every send of the worker at a few
thousand records/s. Only table changelogs need it. Outputs (``prices``, ``pnl``, dead letters, control
requests) go through this plain aiokafka producer instead, batched; an input batch is finished only once
its outputs are delivered, so delivery stays at-least-once exactly as before.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from tickwire.kafka import aiokafka_security, bootstrap_list
from tickwire.settings import Settings


class OutputProducer:
    """One batched aiokafka producer per worker process; each input batch collects its sends in an
    :class:`OutputBatch`. Starts on first use (the worker's loop must be running).
    """

    def __init__(self, settings: Settings, linger_ms: float = 0.0) -> None:
        self._settings = settings
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    def batch(self) -> OutputBatch:
        """A new, empty set of sends to wait for together."""
        return OutputBatch(self)

    async def send(self, topic: str, key: bytes | None, value: bytes | None) -> asyncio.Future[object]:
        """Queue one record (``value`` None is a tombstone); returns its delivery future."""
        producer = self._producer or await self._start()
        return await producer.send(topic, value, key=key)

    async def stop(self) -> None:
        """Deliver what is queued and disconnect."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _start(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                assert self._settings.kafka_bootstrap_servers
                producer = AIOKafkaProducer(
                    bootstrap_servers=bootstrap_list(self._settings.kafka_bootstrap_servers),
                    acks="all",
                    linger_ms=self._linger_ms,
                    **aiokafka_security(self._settings),
                )
                await producer.start()
                self._producer = producer
        return self._producer


class OutputBatch:
    """The outputs of one input batch: ``send`` each (returns at once), then ``await delivered()``.

    Agents run concurrently in one worker, so each waits only for its own records, never for another's.
    """

    def __init__(self, producer: OutputProducer) -> None:
        self._producer = producer
        self._pending: list[asyncio.Future[object]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Queue one record."""
        self._pending.append(await self._producer.send(topic, key, value))

    async def delivered(self) -> None:
        """Wait until every record sent so far is acknowledged; raises the first delivery error."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)
