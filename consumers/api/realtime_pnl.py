"""Real-time P&L on request: an account's positions valued at the latest prices, in one Redis round trip.

The positions hash names the symbols, and the marks' keys depend on them, so a plain pipeline would need
two round trips; a read-only Lua script reads the hash and every needed key server-side instead.
Valuation itself is :mod:`domain.valuation`, shared with the P&L processor.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from pydantic import BaseModel
from redis.asyncio import Redis

from domain.valuation import Mark, MarkPolicy, PositionValuation, choose_mark, total_unrealized, value_position
from schemas.events import LastTrade, Position, PreviousClose, PriceSnapshot
from schemas.timestamps import format_ns, now_ns
from schemas.topics import close_key, last_trade_key, positions_key, price_key

# KEYS[1] = positions hash; ARGV = key prefixes of the live mark and of the close.
# Returns position, live mark, close per position (false -> nil when a key is absent or expired); the close
# only when there is no live mark, the one case where valuation falls back to it.
_READ_POSITIONS_AND_MARKS_LUA = """
local positions = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #positions, 2 do
  local symbol = positions[i]
  local live = redis.call('GET', ARGV[1] .. symbol)
  out[#out + 1] = positions[i + 1]
  out[#out + 1] = live
  out[#out + 1] = (not live) and redis.call('GET', ARGV[2] .. symbol)
end
return out
"""


M = TypeVar("M", bound=BaseModel)
PARSE_CACHE_SIZE = 10_000  # per model: positions are kept even while a busy market churns the prices'


class ParseCache:
    """Parsed models by their exact JSON bytes: positions (and quiet symbols' prices) repeat between requests,
    and parsing Decimal fields is most of the work. The models are frozen, so sharing them is safe."""

    def __init__(self, max_entries: int = PARSE_CACHE_SIZE) -> None:
        self.max_entries = max_entries
        self._parsed: dict[type[BaseModel], dict[bytes, BaseModel]] = {}

    def parse(self, model: type[M], raw: bytes) -> M:
        """``model.model_validate_json(raw)``, reused when these bytes were parsed before."""
        cache = self._parsed.setdefault(model, {})
        parsed = cache.get(raw)
        if parsed is None:
            if len(cache) >= self.max_entries:
                cache.clear()  # crude but O(1) amortised: a full miss costs one request's parsing
            parsed = cache[raw] = model.model_validate_json(raw)
        return parsed  # type: ignore[return-value]


@dataclass(frozen=True)
class AccountValuation:
    """An account's positions valued now, sorted by symbol, and their total (to the cent).

    A position whose record and marks are byte for byte those of an earlier request is not valued again
    (valuation is a pure function of them): its ``updated_at`` is when it was first valued at those inputs.
    """

    account: str
    positions: list[PositionValuation]
    total_unrealized: Decimal


class RealtimePnL:
    """Values an account's open positions from Redis (positions, prices or trades, closes)."""

    def __init__(self, redis: Redis, policy: MarkPolicy) -> None:
        self.redis = redis
        self.policy = policy
        self._script = redis.register_script(_READ_POSITIONS_AND_MARKS_LUA)
        self._cache = ParseCache()
        self._valued: dict[tuple[bytes, bytes | None, bytes | None], PositionValuation] = {}
        # The "last" policy marks with the last trade; the others with the quote.
        live_prefix = last_trade_key("") if policy == "last" else price_key("")
        self._prefixes = [live_prefix, close_key("")]

    async def value_account(self, account: str) -> AccountValuation:
        """One round trip to Redis, then valuation in memory."""
        raw: list[bytes | None] = await self._script(keys=[positions_key(account)], args=self._prefixes)
        now = format_ns(now_ns())
        valued = []
        if len(self._valued) >= PARSE_CACHE_SIZE:
            self._valued.clear()  # bounded like the parse cache
        for i in range(0, len(raw), 3):
            inputs = (raw[i], raw[i + 1], raw[i + 2])
            pnl = self._valued.get(inputs)  # type: ignore[arg-type]
            if pnl is None:
                position = self._cache.parse(Position, raw[i])  # type: ignore[arg-type]
                pnl = value_position(position, self._mark(position, raw[i + 1], raw[i + 2]), now)
                self._valued[inputs] = pnl  # type: ignore[index]
            valued.append(pnl)
        valued.sort(key=lambda p: p.symbol)
        return AccountValuation(account, valued, total_unrealized(valued))

    def _mark(self, position: Position, live_raw: bytes | None, close_raw: bytes | None) -> Mark | None:
        price = self._cache.parse(PriceSnapshot, live_raw) if live_raw and self.policy != "last" else None
        trade = self._cache.parse(LastTrade, live_raw) if live_raw and self.policy == "last" else None
        mark = choose_mark(self.policy, position.qty, price, trade, None)
        if mark is None and close_raw:
            # Parsed only when needed: the close is the fallback for a symbol without a live price.
            mark = choose_mark(self.policy, position.qty, price, trade, self._cache.parse(PreviousClose, close_raw))
        return mark
