"""Replay handlers: the live processors' pure functions, run in-process against a run's names.

A handler consumes the records of one source topic in batches, exactly as its Faust agent does, and
writes to the run's suffixed topics and Redis namespace. The P&L processor plugs in the same way: a
handler class for its source topics, registered in :data:`HANDLERS_BY_TOPIC`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from domain.quotes import QuoteValidator
from domain.records import SourceRecord
from processors.price_batch import price_batch
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
    """The price processor (``processors.agents.price_quotes``): validate, keep the latest price, project.

    The latest-price table starts empty, as a fresh worker's would, and lives in memory for the run.
    """

    def __init__(self, context: ReplayContext) -> None:
        self.context = context
        self.counts = HandlerCounts()
        self.latest_by_symbol: dict[str, dict[str, Any]] = {}
        self.validator = QuoteValidator(max_age_ns=int(context.max_quote_age_s * NS_PER_SECOND))
        self.projector = PriceProjector(context.redis, context.ttl_seconds, namespace=context.namespace)
        self._prices = replay_topic(PRICES.name, context.run_id)
        self._rejected = replay_topic(QUOTES_REJECTED.name, context.run_id)

    @property
    def output_topics(self) -> dict[str, str]:
        """``prices`` and ``quotes.rejected``, suffixed with the run id."""
        return {PRICES.name: self._prices, QUOTES_REJECTED.name: self._rejected}

    async def handle(self, records: Sequence[SourceRecord]) -> None:
        """Same steps as the agent: dead letters, then prices, then one Redis pipeline for the batch."""
        result = price_batch(records, self.latest_by_symbol, self.validator)
        producer = self.context.producer
        sends = [await producer.send(self._rejected, d.value.to_json(), key=d.key) for d in result.rejected]
        sends += [await producer.send(self._prices, p.to_json(), key=p.symbol.encode()) for p in result.prices]
        await self.projector.project(result.prices, [dead.value for dead in result.rejected])
        await asyncio.gather(*sends)
        self.counts.accepted += len(result.prices)
        self.counts.rejected += len(result.rejected)
        self.counts.symbols.update(p.symbol for p in result.prices)
        self.counts.symbols.update(d.value.symbol for d in result.rejected if d.value.symbol)


HANDLERS_BY_TOPIC: dict[str, tuple[Callable[[ReplayContext], ReplayHandler], ...]] = {
    QUOTES_RAW.name: (PriceReplayHandler,),
}
