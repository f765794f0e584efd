"""PnLProjector: writes revalued positions, positions, trades and closes to Redis in one pipeline per batch."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from processors.pipelined_script import NoScriptError, PipelinedScript
from schemas.events import LastTrade, Position, PositionPnL, PreviousClose
from schemas.topics import (
    ACCOUNTS_KEY,
    close_key,
    last_trade_key,
    pnl_channel,
    pnl_key,
    pnl_total_cents_key,
    pnl_total_key,
    positions_key,
)

log = structlog.get_logger(__name__)

# Per revaluation, atomically: store the position's P&L (or delete it when closed), move the account's
# total by the exact difference in cents, store the total, and publish. Re-applying the same value is a
# no-op, so redelivered events change nothing. One call per batch, revaluation after revaluation (redis-py
# packs and parses every command in Python): revaluation i has KEYS[3i-2 .. 3i] (its pnl hash, total,
# total in cents) and ARGV[7i-6 .. 7i] (symbol, value, cents, account, updated_at, update, channel).
_PROJECT_PNL_LUA = """
local function project(pnl_key, total_key, cents_key, symbol, value, new_cents, account, updated_at, update, channel)
  local old = redis.call('HGET', pnl_key, symbol)
  if old == value or (not old and value == '') then return 0 end
  local old_cents = 0
  if old then
    local ok, stored = pcall(cjson.decode, old)
    if ok and type(stored) == 'table' and type(stored.unrealized_pnl) == 'string' then
      old_cents = tonumber((string.gsub(stored.unrealized_pnl, '%.', ''))) or 0
    end
  end
  if value == '' then redis.call('HDEL', pnl_key, symbol) else redis.call('HSET', pnl_key, symbol, value) end
  local total = redis.call('INCRBY', cents_key, (tonumber(new_cents) or 0) - old_cents)
  local sign = ''
  if total < 0 then sign = '-'; total = -total end
  local text = string.format('%s%d.%02d', sign, math.floor(total / 100), total % 100)
  local summary = {account = account, total_unrealized = text, positions = redis.call('HLEN', pnl_key),
                   updated_at = updated_at}
  redis.call('SET', total_key, cjson.encode(summary))
  local message = cjson.decode(update)
  message.total_unrealized = text
  redis.call('PUBLISH', channel, cjson.encode(message))
  return 1
end
local changed = 0
for i = 1, #KEYS / 3 do
  local k, a = 3 * i - 3, 7 * i - 7
  changed = changed + project(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
                              ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7])
end
return changed
"""


def update_message(payload: bytes) -> bytes:
    """The ``PnLUpdated`` JSON of a ``pnl`` value (the Lua step fills in ``total_unrealized``).

    Built from the already serialised value: same strings, a tenth of the cost of a model round trip.
    """
    pnl = orjson.loads(payload)
    return orjson.dumps({
        "event_type": "pnl.updated", "account": pnl["account"], "symbol": pnl["symbol"], "qty": pnl["qty"],
        "mark_price": pnl["mark_price"], "unrealized_pnl": pnl["unrealized_pnl"], "price_source": pnl["price_source"],
        "total_unrealized": "0", "timestamp": pnl["updated_at"], "price_timestamp": pnl["price_timestamp"],
    })


def cents(pnl: PositionPnL) -> str:
    """The position's P&L in integer cents ('' when unvalued): exact, as unrealized_pnl has two places."""
    if pnl.unrealized_pnl is None:
        return ""
    return str(int(pnl.unrealized_pnl.scaleb(2)))


class PnLProjector:
    """Projects P&L state into ``pnl:{account}``, ``pnl_total:{account}``, ``positions:{account}``,
    ``trade:{SYMBOL}`` and ``close:{SYMBOL}``, publishing ``pnl.updated.{account}``.

    Retries a batch with backoff while Redis is unreachable (nothing is acknowledged meanwhile).
    """

    def __init__(self, redis: Redis, trade_ttl_seconds: int) -> None:
        self.redis = redis
        self.trade_ttl_seconds = trade_ttl_seconds
        self._script = PipelinedScript(redis, _PROJECT_PNL_LUA)
        self._loaded = False

    async def project(
        self,
        valued: Sequence[PositionPnL],
        positions: Sequence[Position] = (),
        trades: Sequence[LastTrade] = (),
        closes: Sequence[PreviousClose] = (),
        payloads: Sequence[bytes] | None = None,
    ) -> None:
        """Write one batch of changes; ``payloads[i]`` (if given) is ``valued[i].to_json()``, already made."""
        if not (valued or positions or trades or closes):
            return
        async for attempt in AsyncRetrying(
            # NoScriptError: Redis restarted or flushed its scripts; the next attempt loads it again.
            retry=retry_if_exception_type((RedisConnectionError, RedisTimeoutError, OSError, NoScriptError)),
            wait=wait_exponential(multiplier=0.1, max=5.0),
            before_sleep=lambda state: log.warning(
                "redis unavailable, retrying P&L batch", error=repr(state.outcome.exception()),
                attempt=state.attempt_number),
            reraise=True,
        ):
            with attempt:
                await self._write(valued, positions, trades, closes, payloads)

    async def _write(self, valued: Sequence[PositionPnL], positions: Sequence[Position],
                     trades: Sequence[LastTrade], closes: Sequence[PreviousClose],
                     payloads: Sequence[bytes] | None) -> None:
        if not self._loaded:
            await self._script.load()
            self._loaded = True
        pipe = self.redis.pipeline(transaction=False)
        for position in positions:
            if position.qty == 0:
                pipe.hdel(positions_key(position.account), position.symbol)
            else:
                pipe.hset(positions_key(position.account), position.symbol, position.to_json())
            pipe.sadd(ACCOUNTS_KEY, position.account)
        for trade in trades:
            pipe.set(last_trade_key(trade.symbol), trade.to_json(), ex=self.trade_ttl_seconds)
        for close in closes:
            pipe.set(close_key(close.symbol), close.to_json())
        keys: list[str] = []
        args: list[object] = []
        changed = {(position.account, position.symbol) for position in positions}  # written just above
        restore: dict[tuple[str, str], bytes | None] = {}
        for index, pnl in enumerate(valued):
            closed = pnl.qty == 0
            payload = payloads[index] if payloads is not None else pnl.to_json()
            keys += [pnl_key(pnl.account), pnl_total_key(pnl.account), pnl_total_cents_key(pnl.account)]
            args += [pnl.symbol, "" if closed else payload, "" if closed else cents(pnl),
                     pnl.account, pnl.updated_at, update_message(payload), pnl_channel(pnl.account)]
            restore[(pnl.account, pnl.symbol)] = None if closed else payload
        for (account, symbol), open_payload in restore.items():
            if open_payload is not None and (account, symbol) not in changed:
                # Restores an open position a Redis restart lost (written above only when it changes); HSETNX
                # leaves a stored one as it is. Only the last valuation in the batch counts.
                pipe.hsetnx(positions_key(account), symbol, _position_json(open_payload))
        if valued:
            self._script.queue(pipe, keys, args)
        try:
            await pipe.execute()
        except NoScriptError:
            self._loaded = False
            raise


def _position_json(payload: bytes) -> bytes:
    """The ``positions:{account}`` value of a valued open position's ``pnl`` JSON (time: the revaluation's)."""
    pnl = orjson.loads(payload)
    return orjson.dumps({"account": pnl["account"], "symbol": pnl["symbol"], "qty": pnl["qty"],
                         "avg_entry_price": pnl["avg_entry_price"], "updated_at": pnl["updated_at"]})
