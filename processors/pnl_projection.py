"""PnLProjector: writes revalued positions, positions, trades and closes to Redis in one pipeline per batch."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from domain.valuation import PositionValuation
from processors.redis_projection import DEFAULT_STREAM_MAXLEN
from schemas.events import LastTrade, Position, PreviousClose
from schemas.topics import (
    ACCOUNTS_KEY,
    LIVE_NAMESPACE,
    STREAM_DATA_FIELD,
    close_key,
    last_trade_key,
    namespaced,
    pnl_channel,
    pnl_key,
    pnl_stream,
    pnl_total_cents_key,
    pnl_total_key,
    positions_key,
)
from tickwire.runtime.redis_script import PipelinedScript, pack_items, retry_while_redis_down

log = structlog.get_logger(__name__)

# Per revaluation, atomically: store the position's P&L (or delete it when closed), move the account's
# total by the exact difference in cents, and publish the change and append the same message to the account's
# stream (capped, MAXLEN ~), only when something changed; then store the account's total. Re-applying the
# same value is a no-op, so redelivered events change nothing. One call per batch, revaluations grouped by
# account, all of them in one argument (see pipelined_script): redis-py packs every argument and parses
# every reply in Python, which cost more than the valuation itself.
# Account group g: KEYS[5g-4 .. 5g] = pnl hash, total, total in cents, positions hash, stream;
# ARGV[2] the streams' cap; ARGV[1], packed items: per group its account, channel, count, then per revaluation
# its pnl JSON and a flag:
#   'c' closed (delete), 'r' open and the position's last revaluation in the batch (restore the position
#   with HSETNX if a Redis restart lost it), '' open.
_PROJECT_PNL_LUA = """
local function cents(text)
  if type(text) ~= 'string' then return 0 end
  return tonumber((string.gsub(text, '%.', ''))) or 0
end
local items = cmsgpack.unpack(ARGV[1])
local a = 0
for g = 1, #KEYS / 5 do
  local pnl_key, total_key, cents_key = KEYS[5 * g - 4], KEYS[5 * g - 3], KEYS[5 * g - 2]
  local positions_key, stream = KEYS[5 * g - 1], KEYS[5 * g]
  local account, channel, count = items[a + 1], items[a + 2], tonumber(items[a + 3])
  a = a + 3
  local text, updated_at = nil, nil
  for i = 1, count do
    local payload, flag = items[a + 1], items[a + 2]
    a = a + 2
    local pnl = cjson.decode(payload)
    local symbol, closed = pnl.symbol, flag == 'c'
    if flag == 'r' then
      redis.call('HSETNX', positions_key, symbol, cjson.encode({account = pnl.account, symbol = symbol, qty = pnl.qty,
        avg_entry_price = pnl.avg_entry_price, updated_at = pnl.updated_at}))
    end
    local old = redis.call('HGET', pnl_key, symbol)
    if not ((not closed and old == payload) or (closed and not old)) then
      local old_cents = 0
      if old then
        local ok, stored = pcall(cjson.decode, old)
        if ok and type(stored) == 'table' then old_cents = cents(stored.unrealized_pnl) end
      end
      local new_cents = 0
      if closed then
        redis.call('HDEL', pnl_key, symbol)
      else
        redis.call('HSET', pnl_key, symbol, payload)
        new_cents = cents(pnl.unrealized_pnl)
      end
      local total = redis.call('INCRBY', cents_key, new_cents - old_cents)
      local sign = ''
      if total < 0 then sign = '-'; total = -total end
      text = string.format('%s%d.%02d', sign, math.floor(total / 100), total % 100)
      updated_at = pnl.updated_at
      local message = cjson.encode({event_type = 'pnl.updated', account = pnl.account,
        symbol = symbol, qty = pnl.qty, mark_price = pnl.mark_price, unrealized_pnl = pnl.unrealized_pnl,
        price_source = pnl.price_source, total_unrealized = text, timestamp = pnl.updated_at,
        price_timestamp = pnl.price_timestamp})
      redis.call('PUBLISH', channel, message)
      redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*', '""" + STREAM_DATA_FIELD + """', message)
    end
  end
  if text then
    redis.call('SET', total_key, cjson.encode({account = account, total_unrealized = text,
      positions = redis.call('HLEN', pnl_key), updated_at = updated_at}))
  end
end
return 0
"""


class PnLProjector:
    """Projects P&L state into ``pnl:{account}``, ``pnl_total:{account}``, ``positions:{account}``,
    ``trade:{SYMBOL}`` and ``close:{SYMBOL}``, publishing ``pnl.updated.{account}`` and appending the same
    messages to ``pnl.stream.{account}`` (capped at ``stream_maxlen`` entries).

    Retries a batch with backoff while Redis is unreachable (nothing is acknowledged meanwhile).
    Every key and channel is prefixed with ``namespace`` (a replay run's, see ``schemas.topics``).
    """

    def __init__(self, redis: Redis, trade_ttl_seconds: int, namespace: str = LIVE_NAMESPACE,
                 stream_maxlen: int = DEFAULT_STREAM_MAXLEN) -> None:
        self.redis = redis
        self.trade_ttl_seconds = trade_ttl_seconds
        self.stream_maxlen = stream_maxlen
        self.namespace = namespace
        self._script = PipelinedScript(redis, _PROJECT_PNL_LUA)

    async def project(
        self,
        valued: Sequence[PositionValuation],
        positions: Sequence[Position] = (),
        trades: Sequence[LastTrade] = (),
        closes: Sequence[PreviousClose] = (),
        payloads: Sequence[bytes] | None = None,
    ) -> None:
        """Write one batch of changes; ``payloads[i]`` (if given) is ``valued[i].to_json()``, already made."""
        if not (valued or positions or trades or closes):
            return
        await retry_while_redis_down(lambda: self._write(valued, positions, trades, closes, payloads), "P&L")

    async def reassert(self, positions: Sequence[Position], closes: Sequence[PreviousClose]) -> None:
        """Write the open positions, the accounts set and the closes again (idempotent): a Redis that was
        flushed or restarted gets back what only changes rarely (the P&L itself returns with the next mark)."""
        if not (positions or closes):
            return
        ns = self.namespace
        by_account: dict[str, dict[FieldT, EncodableT]] = {}
        for position in positions:
            by_account.setdefault(position.account, {})[position.symbol] = position.to_json()
        # One command per account and one MSET, not one per position: every command costs a Python packing.
        pipe = self.redis.pipeline(transaction=False)
        for account, fields in by_account.items():
            pipe.hset(namespaced(positions_key(account), ns), mapping=fields)
        if by_account:
            pipe.sadd(namespaced(ACCOUNTS_KEY, ns), *by_account)
        if closes:
            pipe.mset({namespaced(close_key(close.symbol), ns): close.to_json() for close in closes})
        await pipe.execute()

    async def _write(self, valued: Sequence[PositionValuation], positions: Sequence[Position],
                     trades: Sequence[LastTrade], closes: Sequence[PreviousClose],
                     payloads: Sequence[bytes] | None) -> None:
        await self._script.ensure_loaded()
        ns = self.namespace
        pipe = self.redis.pipeline(transaction=False)
        for position in positions:
            if position.qty == 0:
                pipe.hdel(namespaced(positions_key(position.account), ns), position.symbol)
            else:
                pipe.hset(namespaced(positions_key(position.account), ns), position.symbol, position.to_json())
            pipe.sadd(namespaced(ACCOUNTS_KEY, ns), position.account)
        for trade in trades:
            pipe.set(namespaced(last_trade_key(trade.symbol), ns), trade.to_json(), ex=self.trade_ttl_seconds)
        for close in closes:
            pipe.set(namespaced(close_key(close.symbol), ns), close.to_json())
        keys: list[str] = []
        items: list[str | bytes | int] = []
        by_account: dict[str, list[int]] = {}
        last: dict[tuple[str, str], int] = {}  # each position's last revaluation in the batch
        for index, pnl in enumerate(valued):
            by_account.setdefault(pnl.account, []).append(index)
            last[(pnl.account, pnl.symbol)] = index
        for account, indices in by_account.items():
            keys += [namespaced(name, ns) for name in (pnl_key(account), pnl_total_key(account),
                                                        pnl_total_cents_key(account), positions_key(account),
                                                        pnl_stream(account))]
            items += [account, namespaced(pnl_channel(account), ns), len(indices)]
            for index in indices:
                pnl = valued[index]
                flag = "c" if pnl.qty == 0 else "r" if last[(account, pnl.symbol)] == index else ""
                items += [payloads[index] if payloads is not None else pnl.to_json(), flag]
        if valued:
            self._script.queue(pipe, keys, [pack_items(items), self.stream_maxlen])
        await self._script.execute(pipe)

