"""The `make run` price line: it keeps following when another publisher shares the price channels."""

from __future__ import annotations

import asyncio
import io
from decimal import Decimal

import orjson
import pytest
from redis.asyncio import Redis

from consumers.price_monitor import PriceMonitor
from schemas.events import PriceUpdated
from schemas.timestamps import format_ns, now_ns
from schemas.topics import price_channel
from tests.helpers import eventually, unique_symbol

pytestmark = pytest.mark.integration


async def test_price_monitor_given_a_foreign_message_on_the_channel_skips_it_and_keeps_counting(
        redis_url: str, redis: Redis) -> None:
    symbol = unique_symbol("M")
    out = io.StringIO()
    monitor = PriceMonitor(redis_url, (symbol,), out)
    running = asyncio.create_task(monitor.run(every_s=0.1))

    async def subscribed() -> bool:
        return bool((await redis.execute_command("PUBSUB", "NUMPAT")) >= 1)

    try:
        await eventually(subscribed, 10, "the monitor's subscription")
        update = PriceUpdated(symbol=symbol, price=Decimal("10.5"), bid=Decimal("10"), ask=Decimal("11"),
                              timestamp=format_ns(now_ns()))
        # Another service publishing its own shape on our channel (e.g. the seeds' direct design), then ours.
        await redis.publish(price_channel(symbol), orjson.dumps({"symbol": symbol, "price": 1.0}))
        await redis.publish(price_channel(symbol), update.to_json())
        await redis.publish(price_channel(symbol), update.to_json())
        await eventually(lambda: _shows(out, f"{symbol} mid=10.5 spread=1 n=2"), 10, "both updates counted")
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    assert monitor.skipped == 1


async def _shows(out: io.StringIO, text: str) -> bool:
    return text in out.getvalue()
