"""PriceProjector: writes accepted prices to Redis (SET with TTL + PUBLISH + XADD), batched and idempotent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import structlog
from redis.asyncio import Redis

from domain.price_payloads import PricePayloads
from schemas.events import RejectedQuote
from schemas.topics import (
    LIVE_NAMESPACE,
    PRICE_STREAMS_KEY,
    PROCESSOR_STATS_KEY,
    STREAM_DATA_FIELD,
    namespaced,
    price_channel,
    price_key,
    price_stream,
    symbol_stats_key,
)
from tickwire.runtime.redis_script import PipelinedScript, pack_items, retry_while_redis_down

log = structlog.get_logger(__name__)
DEFAULT_STREAM_MAXLEN = 10_000  # TICKWIRE_REDIS_STREAM_MAXLEN's default (processors/settings.py says why)

# One atomic step per batch, one update after another: replace the stored price only if this one is not
# older, and then (only then) publish it and append it to the symbol's stream, so the key, the channel and the
# stream never disagree, and replays and at-least-once redeliveries change nothing and append nothing.
# The stream is capped (MAXLEN ~: Redis trims whole nodes, cheaply) and expires with the price it carries; the
# symbol joins the set of symbols with a stream, where readers of every symbol find it.
# One call per batch (not per price) and its prices in one argument (see pipelined_script).
# KEYS[1] the stats hash, KEYS[2] the set of symbols with a stream. ARGV[1] the TTL; ARGV[2..5] the prefixes of
# price keys, stats hashes, channels and streams (schemas.topics names with the run's namespace); ARGV[6] the
# streams' cap; ARGV[7] the packed items: per price i, items[4i-3 .. 4i] are its symbol, snapshot, exchange time
# and update message.
_PROJECT_PRICES_LUA = """
local published = 0
local items = cmsgpack.unpack(ARGV[7])
local n = #items / 4
local key_prefix, stats_prefix, channel_prefix, stream_prefix = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
for i = 1, n do
  local symbol, snapshot, stamp = items[4 * i - 3], items[4 * i - 2], items[4 * i - 1]
  local key = key_prefix .. symbol
  redis.call('HINCRBY', stats_prefix .. symbol, 'accepted', 1)
  local newer = true
  local current = redis.call('GET', key)
  if current then
    if current == snapshot then
      newer = false
    else
      local ok, stored = pcall(cjson.decode, current)
      if ok and type(stored) == 'table' and type(stored.timestamp) == 'string' and stored.timestamp > stamp then
        newer = false
      end
    end
  end
  if newer then
    local stream = stream_prefix .. symbol
    redis.call('SET', key, snapshot, 'EX', ARGV[1])
    redis.call('PUBLISH', channel_prefix .. symbol, items[4 * i])
    redis.call('XADD', stream, 'MAXLEN', '~', ARGV[6], '*', '""" + STREAM_DATA_FIELD + """', items[4 * i])
    redis.call('EXPIRE', stream, ARGV[1])
    redis.call('SADD', KEYS[2], symbol)
    published = published + 1
  end
end
redis.call('HINCRBY', KEYS[1], 'accepted', n)
if published > 0 then redis.call('HINCRBY', KEYS[1], 'published', published) end
return published
"""


class PriceProjector:
    """Projects price events into ``price:{SYMBOL}``, ``price.updated.{SYMBOL}`` and ``price.stream.{SYMBOL}``
    (capped at ``stream_maxlen`` entries), one pipeline per batch.

    While Redis is unreachable it retries the whole batch with capped exponential backoff (the stream
    waits, nothing is acknowledged, nothing is lost), logging one line per failed attempt.
    Every key and channel is prefixed with ``namespace`` (a replay run's, see ``schemas.topics``).
    """

    def __init__(self, redis: Redis, ttl_seconds: int, namespace: str = LIVE_NAMESPACE,
                 stream_maxlen: int = DEFAULT_STREAM_MAXLEN) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.stream_maxlen = stream_maxlen
        self.namespace = namespace
        self._script = PipelinedScript(redis, _PROJECT_PRICES_LUA)

    async def project(self, prices: Sequence[PricePayloads], rejected: Sequence[RejectedQuote] = ()) -> int:
        """Write a batch and count it (in total and per symbol); returns how many prices changed."""
        if not prices and not rejected:
            return 0
        return await retry_while_redis_down(lambda: self._write(prices, rejected), "prices")

    async def _write(self, prices: Sequence[PricePayloads], rejected: Sequence[RejectedQuote]) -> int:
        ns = self.namespace
        stats_key = namespaced(PROCESSOR_STATS_KEY, ns)
        await self._script.ensure_loaded()
        pipe = self.redis.pipeline(transaction=False)
        if prices:
            items: list[str | bytes] = []
            for price in prices:  # per-symbol counts let `tickwire diff` compare a replay with live processing
                items += [price.symbol, price.snapshot, price.timestamp, price.update]
            self._script.queue(pipe, [stats_key, namespaced(PRICE_STREAMS_KEY, ns)], [
                self.ttl_seconds, namespaced(price_key(""), ns), namespaced(symbol_stats_key(""), ns),
                namespaced(price_channel(""), ns), namespaced(price_stream(""), ns), self.stream_maxlen,
                pack_items(items)])
        for reason, count in Counter(str(r.reason) for r in rejected).items():
            pipe.hincrby(stats_key, f"rejected.{reason}", count)
        for (symbol, reason), count in Counter((r.symbol, str(r.reason)) for r in rejected if r.symbol).items():
            pipe.hincrby(namespaced(symbol_stats_key(symbol), ns), f"rejected.{reason}", count)
        results = await self._script.execute(pipe)
        return int(results[0]) if prices else 0

