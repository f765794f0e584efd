"""Replay handlers: the live processors' pure functions, run in-process against a run's names.

A handler consumes the records of one source topic in batches, through the same pure batch handler as the
live stage (one handler, two drivers), and writes to the run's suffixed topics and Redis namespace. Another
stage plugs in the same way: a handler class for its source topics, registered in :data:`HANDLERS_BY_TOPIC`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from domain.price_handler import PriceHandler
from domain.quotes import QuoteValidator
from domain.records import SourceRecord
from processors.redis_projection import PriceProjector
from schemas.timestamps import NS_PER_SECOND
from schemas.topics import PRICES, QUOTES_RAW, QUOTES_REJECTED, replay_topic


@dataclass(frozen=True)
class ReplayContext:
    """Where a run writes: its Redis namespace and suffixed topics, and the settings its processors use."""

    run_id: str
    namespace: str
    redis: Redis
    producer: AIOKafkaProducer
    ttl_seconds: int
    max_quote_age_s: float


@dataclass
class HandlerCounts:
    """What a handler produced so far."""

    accepted: int = 0
    rejected: int = 0
    symbols: set[str] = field(default_factory=set)


class ReplayHandler(Protocol):
    """Re-runs one processor over records of its source topic."""

    counts: HandlerCounts

    @property
    def output_topics(self) -> dict[str, str]:
        """Live topic name -> the run's topic name, for every topic the handler writes."""
        ...

    async def handle(self, records: Sequence[SourceRecord]) -> None:
        """Process one batch, in order, as the live agent would."""
        ...


class PriceReplayHandler:
    """The price stage (:class:`~domain.price_handler.PriceHandler`): validate, keep the latest price, project.

    The latest prices start empty, as a fresh worker's would, and live in memory for the run; marks (the
    P&L stage's input) are not replayed.
    """

    def __init__(self, context: ReplayContext) -> None:
        self.context = context
        self.counts = HandlerCounts()
        self.handler = PriceHandler(QuoteValidator(max_age_ns=int(context.max_quote_age_s * NS_PER_SECOND)),
                                    "mid", mark_interval_s=0.0)
        self.projector = PriceProjector(context.redis, context.ttl_seconds, namespace=context.namespace)
        self._prices = replay_topic(PRICES.name, context.run_id)
        self._rejected = replay_topic(QUOTES_REJECTED.name, context.run_id)

    @property
    def output_topics(self) -> dict[str, str]:
        """``prices`` and ``quotes.rejected``, suffixed with the run id."""
        return {PRICES.name: self._prices, QUOTES_REJECTED.name: self._rejected}

    async def handle(self, records: Sequence[SourceRecord]) -> None:
        """Same steps as the live stage: dead letters, then prices, then one Redis pipeline for the batch."""
        result = self.handler.handle(records, time.monotonic())
        producer = self.context.producer
        sends = [await producer.send(self._rejected, d.value.to_json(), key=d.key) for d in result.rejected]
        sends += [await producer.send(self._prices, p.event, key=p.symbol.encode()) for p in result.payloads]
        await self.projector.project(result.payloads, [dead.value for dead in result.rejected])
        await asyncio.gather(*sends)
        self.counts.accepted += len(result.prices)
        self.counts.rejected += len(result.rejected)
        self.counts.symbols.update(p.symbol for p in result.prices)
        self.counts.symbols.update(d.value.symbol for d in result.rejected if d.value.symbol)


HANDLERS_BY_TOPIC: dict[str, tuple[Callable[[ReplayContext], ReplayHandler], ...]] = {
    QUOTES_RAW.name: (PriceReplayHandler,),
}
