"""PriceProjector: writes accepted prices to Redis (SET with TTL + PUBLISH), batched and idempotent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from processors.pipelined_script import NoScriptError, PipelinedScript
from schemas.events import PriceEvent, PriceUpdated, RejectedQuote
from schemas.topics import LIVE_NAMESPACE, PROCESSOR_STATS_KEY, namespaced, price_channel, price_key, symbol_stats_key

log = structlog.get_logger(__name__)

# One atomic step per update: replace the stored price only if this one is not older, and publish only
# when the stored value changed. Replays and at-least-once redeliveries therefore change nothing.
_PROJECT_PRICE_LUA = """
local current = redis.call('GET', KEYS[1])
if current then
  if current == ARGV[1] then return 0 end
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' and type(stored.timestamp) == 'string'
     and stored.timestamp > ARGV[2] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
redis.call('HINCRBY', KEYS[2], 'published', 1)
return 1
"""


class PriceProjector:
    """Projects price events into ``price:{SYMBOL}`` and ``price.updated.{SYMBOL}``, one pipeline per batch.

    While Redis is unreachable it retries the whole batch with capped exponential backoff (the stream
    waits, nothing is acknowledged, nothing is lost), logging one line per failed attempt.
    Every key and channel is prefixed with ``namespace`` (a replay run's, see ``schemas.topics``).
    """

    def __init__(self, redis: Redis, ttl_seconds: int, namespace: str = LIVE_NAMESPACE) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.namespace = namespace
        self._script = PipelinedScript(redis, _PROJECT_PRICE_LUA)
        self._loaded = False

    async def project(self, prices: Sequence[PriceEvent], rejected: Sequence[RejectedQuote] = ()) -> int:
        """Write a batch and count it (in total and per symbol); returns how many prices changed."""
        if not prices and not rejected:
            return 0
        async for attempt in AsyncRetrying(
            # NoScriptError: Redis restarted or flushed its scripts; the next attempt loads it again.
            retry=retry_if_exception_type((RedisConnectionError, RedisTimeoutError, OSError, NoScriptError)),
            wait=wait_exponential(multiplier=0.1, max=5.0),
            before_sleep=_log_retry,
            reraise=True,
        ):
            with attempt:
                published = await self._write(prices, rejected)
        if attempt.retry_state.attempt_number > 1:
            log.info("redis reachable again", attempts=attempt.retry_state.attempt_number)
        return published

    async def _write(self, prices: Sequence[PriceEvent], rejected: Sequence[RejectedQuote]) -> int:
        ns = self.namespace
        stats_key = namespaced(PROCESSOR_STATS_KEY, ns)
        if not self._loaded:
            await self._script.load()
            self._loaded = True
        pipe = self.redis.pipeline(transaction=False)
        for event in prices:
            # PriceSnapshot is PriceEvent without received_at: same fields, same order.
            snapshot = event.model_dump_json(exclude={"received_at"}).encode()
            update = PriceUpdated(
                symbol=event.symbol, price=event.mid, bid=event.bid, ask=event.ask, timestamp=event.timestamp
            ).to_json()
            self._script.queue(
                pipe,
                keys=[namespaced(price_key(event.symbol), ns), stats_key],
                args=[snapshot, event.timestamp, self.ttl_seconds, namespaced(price_channel(event.symbol), ns), update],
            )
        if prices:
            pipe.hincrby(stats_key, "accepted", len(prices))
        for reason, count in Counter(str(r.reason) for r in rejected).items():
            pipe.hincrby(stats_key, f"rejected.{reason}", count)
        # Per-symbol counts let `tickwire diff` compare a replay with live processing symbol by symbol.
        for symbol, count in Counter(p.symbol for p in prices).items():
            pipe.hincrby(namespaced(symbol_stats_key(symbol), ns), "accepted", count)
        for (symbol, reason), count in Counter((r.symbol, str(r.reason)) for r in rejected if r.symbol).items():
            pipe.hincrby(namespaced(symbol_stats_key(symbol), ns), f"rejected.{reason}", count)
        try:
            results = await pipe.execute()
        except NoScriptError:
            self._loaded = False
            raise
        return sum(int(r) for r in results[: len(prices)])


def _log_retry(state) -> None:  # type: ignore[no-untyped-def]
    exc = state.outcome.exception() if state.outcome else None
    log.warning(
        "redis unavailable, retrying batch",
        error=f"{type(exc).__name__}: {exc}",
        attempt=state.attempt_number,
        retry_in_s=round(state.upcoming_sleep, 2),
    )
