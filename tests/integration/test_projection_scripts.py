"""The projections' Lua scripts on a real Redis: one round trip per batch, and back after a script flush."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from redis.asyncio import Redis

from processors.redis_projection import PriceProjector
from schemas.events import PriceEvent
from schemas.timestamps import format_ns
from schemas.topics import price_key
from tests.helpers import unique_symbol

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000_000_000


def price(symbol: str, bid: str, t_ns: int) -> PriceEvent:
    bid_d = Decimal(bid)
    return PriceEvent(symbol=symbol, bid=bid_d, ask=bid_d + Decimal("0.02"), mid=bid_d + Decimal("0.01"),
                      spread=Decimal("0.02"), spread_bps=Decimal("1"), bid_size=1, ask_size=1,
                      timestamp=format_ns(t_ns), exchange="V")


async def test_price_projector_given_flushed_scripts_reloads_and_writes_the_batch(redis: Redis) -> None:
    """Test that a batch is one pipeline (no SCRIPT EXISTS), and a Redis that forgot the script gets it again."""
    # Arrange
    symbol = unique_symbol("P")
    projector = PriceProjector(redis, ttl_seconds=60)
    assert await projector.project([price(symbol, "10.00", T0)]) == 1
    await redis.script_flush()
    # Act
    published = await projector.project([price(symbol, "11.00", T0 + 1)])
    script_calls = await _script_commands(redis)
    await projector.project([price(symbol, "12.00", T0 + 2)])
    # Assert
    assert published == 1
    assert orjson.loads(await redis.get(price_key(symbol)))["bid"] == "12.00"
    assert await _script_commands(redis) == script_calls  # no SCRIPT EXISTS/LOAD once it is loaded


async def _script_commands(redis: Redis) -> int:
    """SCRIPT ... commands served so far (Redis 6 counts them as cmdstat_script, 7 per subcommand)."""
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_script"))
