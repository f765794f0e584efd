"""What a replay run gives a stage to write into: the run's Redis namespace and its own topics.

``tickwire replay`` (``consumers/tools/replay.py``) runs a stage's own I/O side over its own pure handler, as
the processor does, but into a run: Redis names under the run's namespace (``replay:{run}:``), Kafka records
to ``{topic}.replay.{run}`` for the outputs the stage's replay declares, and nothing anywhere else (marks,
changelogs, re-keyed positions and subscription requests are the live pipeline's plumbing, not a run's result).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer, ConsumerRecord
from redis.asyncio import Redis

from schemas.topics import replay_topic
from tickwire.settings import TickwireSettings


@dataclass(frozen=True)
class ReplayContext:
    """Where a run writes (its namespace, its producer, how long its keys live) and the settings it runs with."""

    run_id: str
    namespace: str
    redis: Redis
    producer: AIOKafkaProducer
    ttl_seconds: int
    settings: TickwireSettings
    overrides: Mapping[str, Any] = field(default_factory=dict)  # settings the run changes (a what-if), by field


@dataclass
class HandlerCounts:
    """What a handler produced so far: records of its accepted and rejected outputs, and their keys."""

    accepted: int = 0
    rejected: int = 0
    keys: set[str] = field(default_factory=set)

    @property
    def symbols(self) -> set[str]:
        """The symbols of the keys (a key is a symbol or ``account:symbol``)."""
        return {key.rpartition(":")[2] for key in self.keys}

    @property
    def accounts(self) -> set[str]:
        """The accounts of the ``account:symbol`` keys."""
        return {key.rpartition(":")[0] for key in self.keys if ":" in key}


class ReplayHandler(Protocol):
    """Re-runs one stage over records of the topics its replay reads."""

    name: str  # the stage's
    counts: HandlerCounts
    topics: tuple[str, ...]  # the topics it reads

    @property
    def output_topics(self) -> dict[str, str]:
        """Live topic name -> the run's topic name, for every topic the handler writes."""
        ...

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Process one batch, in order, as the live stage would; its outputs are sent when this returns."""
        ...

    async def finish(self) -> None:
        """The range is done: send what the stage still holds."""
        ...


class RunOutputs:
    """A stage's :class:`~tickwire.runtime.outputs.Outputs` in a run: the declared outputs go to the run's topics
    (counted), the rest is dropped."""

    def __init__(self, producer: AIOKafkaProducer, run_id: str, outputs: Iterable[str], accepted: str,
                 rejected: str) -> None:
        self.producer = producer
        self.topics = {live: replay_topic(live, run_id) for live in outputs}
        self.accepted = accepted
        self.rejected = rejected
        self.counts = HandlerCounts()
        self._sent: list[asyncio.Future[object]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None, partition_key: bytes | None = None
                   ) -> None:
        """Send one record to the run's topic for ``topic`` (none: dropped)."""
        await self.send_many(topic, [(key, value)])

    async def send_many(self, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Send records to the run's topic for ``topic`` (none: dropped)."""
        target = self.topics.get(topic)
        if target is None:
            return
        counts = self.counts
        for key, value in records:
            self._sent.append(await self.producer.send(target, value, key=key))
            if key:
                counts.keys.add(key.decode("utf-8", "replace"))
            if topic == self.accepted:
                counts.accepted += 1
            elif topic == self.rejected:
                counts.rejected += 1

    async def flush(self) -> None:
        """Wait for every record sent so far (an undelivered one raises)."""
        sent, self._sent = self._sent, []
        if sent:
            await asyncio.gather(*sent)
