"""PriceMonitor: follows price.updated.* in Redis and prints one summary line per second."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import TextIO

import structlog
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.events import PriceUpdated
from schemas.topics import PRICE_CHANNEL_PATTERN, PROCESSOR_STATS_KEY
from tickwire.redis_values import as_text

log = structlog.get_logger(__name__)


@dataclass
class _Latest:
    mid: Decimal
    spread: Decimal


class PriceMonitor:
    """Counts price updates per symbol and reports the latest mid and spread (what ``make run`` shows)."""

    def __init__(self, redis_url: str, symbols: tuple[str, ...], out: TextIO = sys.stdout) -> None:
        self.redis = Redis.from_url(redis_url)
        self.symbols = symbols
        self.out = out
        self.latest: dict[str, _Latest] = {}
        self.updates: Counter[str] = Counter()
        self.skipped = 0  # messages on price.updated.* that were not tickwire's

    async def run(self, every_s: float = 1.0) -> None:
        """Follow updates and print until cancelled; survives Redis restarts."""
        follower = asyncio.create_task(self._follow_forever(), name="price-monitor-follow")
        try:
            started = time.monotonic()
            while True:
                await asyncio.sleep(every_s)  # the report period
                await self._report(time.monotonic() - started)
        finally:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
            await self.redis.aclose()

    async def _follow_forever(self) -> None:
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.psubscribe(PRICE_CHANNEL_PATTERN)
                    async for message in pubsub.listen():
                        if message["type"] == "pmessage":
                            self._on_message(message["channel"], message["data"])
            except RedisError as exc:
                log.warning("price monitor lost redis, reconnecting", error=str(exc))
                await asyncio.sleep(1.0)  # reconnect backoff

    def _on_message(self, channel: bytes, data: bytes) -> None:
        try:
            update = PriceUpdated.model_validate_json(data)
        except ValidationError as exc:  # another publisher on our channels: skip it, keep following
            if not self.skipped:
                log.warning("price monitor skips messages that are not a PriceUpdated", channel=as_text(channel),
                            error=exc.errors(include_url=False)[0]["msg"])
            self.skipped += 1
            return
        self._on_update(update)

    def _on_update(self, update: PriceUpdated) -> None:
        self.latest[update.symbol] = _Latest(update.price, update.ask - update.bid)
        self.updates[update.symbol] += 1

    async def _report(self, elapsed_s: float) -> None:
        if not self.latest:
            if int(elapsed_s) % 5 == 0:
                print(f"waiting for prices ({elapsed_s:.0f}s)...", file=self.out, flush=True)
            return
        try:
            stats = {as_text(k): int(v) for k, v in (await self.redis.hgetall(PROCESSOR_STATS_KEY)).items()}
        except RedisError:
            stats = {}
        rejected = sum(v for k, v in stats.items() if k.startswith("rejected."))
        parts = []
        for symbol in self.symbols:
            latest = self.latest.get(symbol)
            if latest is None:
                parts.append(f"{symbol} -")
            else:
                parts.append(f"{symbol} mid={latest.mid} spread={latest.spread} n={self.updates[symbol]}")
        line = " | ".join(parts)
        clock = time.strftime("%H:%M:%S")
        print(f"{clock} prices {line} | updates={sum(self.updates.values())} rejected={rejected}",
              file=self.out, flush=True)
