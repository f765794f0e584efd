"""Toy stage: counts quotes per symbol into the Redis hash ``toy.counts`` (shows what a new stage takes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aiokafka import ConsumerRecord

from schemas.topics import namespaced
from tickwire.runtime.stage import StageBase

if TYPE_CHECKING:
    from processors.registry import StageContext

TOY_COUNTS_KEY = "toy.counts"  # symbol -> quotes seen
Count = Callable[[Sequence[ConsumerRecord]], Counter[str]]


def count_quotes(records: Sequence[ConsumerRecord]) -> Counter[str]:
    """The pure handler: quotes per symbol in a batch."""
    return Counter(r.key.decode() for r in records if r.key)


def toy_handler(ctx: StageContext) -> Count:
    """The pure handler, for any context."""
    return count_quotes


class QuoteCountStage(StageBase):
    """The I/O side: one HINCRBY per symbol per batch, under the context's namespace."""

    def __init__(self, ctx: StageContext, count: Count) -> None:
        super().__init__(ctx.outputs)
        self.redis, self.key, self.count = ctx.redis, namespaced(TOY_COUNTS_KEY, ctx.namespace), count

    async def handle(self, records: Sequence[ConsumerRecord]) -> None:
        """Count a batch; returns once Redis has it."""
        pipe = self.redis.pipeline(transaction=False)
        for symbol, n in self.count(records).items():
            pipe.hincrby(self.key, symbol, n)
        await pipe.execute()
