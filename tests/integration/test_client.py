"""The Python consumer library on a real Redis: latest prices, price and P&L streams, callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from decimal import Decimal
from typing import TypeVar

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from consumers.client import TickwireClient
from schemas.events import PnLUpdated, PriceUpdated
from schemas.topics import pnl_channel, price_channel
from tests.helpers import eventually, unique_symbol
from tests.integration.api_support import price_update, seed_pnl, seed_price

pytestmark = pytest.mark.integration
E = TypeVar("E")


async def take(stream: AsyncIterator[E], count: int) -> list[E]:
    """The first ``count`` events of a stream, closing it afterwards."""
    out: list[E] = []
    async with aclosing(stream):  # type: ignore[type-var]
        async for event in stream:
            out.append(event)
            if len(out) == count:
                break
    return out


async def subscribed(redis: Redis, channel: str, count: int) -> bool:
    [(_, subscribers)] = await redis.pubsub_numsub(channel)
    return int(subscribers) >= count


async def test_latest_price_given_known_and_unknown_symbols_returns_snapshot_or_none(redis_url: str,
                                                                                    redis: Redis) -> None:
    symbol = unique_symbol("L")
    stored = await seed_price(redis, symbol, "150.25", "150.27")
    async with TickwireClient(redis_url) as client:
        latest = await client.latest_price(symbol.lower())
        missing = await client.latest_price("ZZZZZZ")
        several = await client.latest_prices([symbol, "ZZZZZZ"])

    assert latest == stored and latest is not None and latest.mid == Decimal("150.26")
    assert missing is None
    assert several == {symbol: stored}


async def test_stream_quotes_given_callbacks_runs_them_and_isolates_a_failing_one(redis_url: str,
                                                                                  redis: Redis) -> None:
    """Test sync and async callbacks on concurrent streams; one raising is logged and changes nothing else."""
    # Arrange
    a, b = unique_symbol("A"), unique_symbol("B")
    seen_sync: list[PriceUpdated] = []
    seen_async: list[PriceUpdated] = []

    async def async_callback(update: PriceUpdated) -> None:
        await asyncio.sleep(0)  # a real await inside the callback
        seen_async.append(update)

    def failing_callback(update: PriceUpdated) -> None:
        raise RuntimeError(f"boom on {update.symbol}")

    async with TickwireClient(redis_url) as client:
        both = asyncio.create_task(take(client.stream_quotes([a, b], callback=seen_sync.append), 3))
        only_a = asyncio.create_task(take(client.stream_quotes(a, callback=async_callback), 2))
        failing = asyncio.create_task(take(client.stream_quotes([b], callback=failing_callback), 2))
        await eventually(lambda: subscribed(redis, price_channel(a), 2), 30, "two streams on a")
        await eventually(lambda: subscribed(redis, price_channel(b), 2), 30, "two streams on b")

        # Act
        with capture_logs() as logs:
            a1 = await seed_price(redis, a, "1.00", "1.02", publish=True)
            b1 = await seed_price(redis, b, "2.00", "2.02", publish=True)
            a2 = await seed_price(redis, a, "1.10", "1.12", publish=True)
            b2 = await seed_price(redis, b, "2.10", "2.12", publish=True)
            results = await asyncio.wait_for(asyncio.gather(both, only_a, failing), 60)

    # Assert
    expected_both = [price_update(s) for s in (a1, b1, a2)]
    assert results[0] == expected_both and seen_sync == expected_both
    assert results[1] == seen_async == [price_update(a1), price_update(a2)]
    assert results[2] == [price_update(b1), price_update(b2)]  # the stream went on after each failure
    failures = [e for e in logs if e["event"].startswith("stream callback failed")]
    assert len(failures) == 2 and failures[0]["callback"] == "failing_callback"


async def test_stream_pnl_given_revaluations_yields_them_for_that_account_only(redis_url: str, redis: Redis) -> None:
    symbol = unique_symbol("P")
    got: list[PnLUpdated] = []
    async with TickwireClient(redis_url) as client:
        mine = asyncio.create_task(take(client.stream_pnl("acct-1", callback=got.append), 1))
        await eventually(lambda: subscribed(redis, pnl_channel("acct-1"), 1), 30, "the P&L stream")
        await seed_pnl(redis, symbol, "10", "1.00", "1.50", "5.00", "5.00", account="acct-2", publish=True)
        valued = await seed_pnl(redis, symbol, "10", "1.00", "2.00", "10.00", "10.00", account="acct-1",
                                publish=True)
        [update] = await asyncio.wait_for(mine, 60)

    assert (update.account, update.symbol, update.unrealized_pnl, update.total_unrealized) == (
        "acct-1", symbol, Decimal("10.00"), Decimal("10.00"))
    assert update.timestamp == valued.updated_at and got == [update]


def test_client_given_no_redis_or_no_symbols_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match="either redis_url or redis"):
        TickwireClient()
    client = TickwireClient(redis=Redis())
    with pytest.raises(ValueError, match="at least one symbol"):
        client.stream_quotes([])
