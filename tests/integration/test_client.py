"""The Python consumer library on a real Redis: latest prices, price and P&L streams, callbacks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from consumers.client import Gap, TickwireClient
from processors.redis_projection import PriceProjector
from schemas.events import PnLUpdated, PriceSnapshot, PriceUpdated
from schemas.topics import price_key, price_stream
from tests.helpers import eventually, unique_symbol
from tests.integration.api_support import blocked_readers, price_update, seed_pnl, seed_price
from tests.integration.test_chaos import Pipeline, pipeline
from tests.integration.test_projection_scripts import T0, price
from tickwire.tasks import cancel_until_done

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


async def readers_waiting(redis: Redis, count: int) -> bool:
    return await blocked_readers(redis) >= count


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
        await eventually(lambda: readers_waiting(redis, 3), 30, "three streams reading")

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
        await eventually(lambda: readers_waiting(redis, 1), 30, "the P&L stream reading")
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


async def test_stream_quotes_given_a_reader_behind_the_cap_yields_one_gap_then_goes_on_in_order(
        redis_url: str, redis: Redis) -> None:
    """Test that updates the cap trimmed before the reader got them are one explicit Gap, not silence."""
    # Arrange: a reader that got update 1, then reads nothing while 1,000 more go past a cap of 100
    symbol = unique_symbol("C")
    projector = PriceProjector(redis, ttl_seconds=60, stream_maxlen=100)
    async with TickwireClient(redis_url) as client, aclosing(client.stream_quotes(symbol)) as stream:
        first_read = asyncio.ensure_future(anext(stream))
        await eventually(lambda: readers_waiting(redis, 1), 30, "the stream reading")
        await projector.project([price(symbol, "1", T0 + 1)])
        first = await asyncio.wait_for(first_read, 30)
        for chunk in range(10):
            await projector.project([price(symbol, str(n), T0 + n) for n in range(2 + chunk * 100, 102 + chunk * 100)])
        [(oldest_id, _)] = await redis.xrange(price_stream(symbol), count=1)  # type: ignore[misc]
        kept = await redis.xlen(price_stream(symbol))

        # Act
        rest: list[PriceUpdated | Gap] = []
        while not rest or not isinstance(rest[-1], PriceUpdated) or rest[-1].bid != Decimal(1001):
            rest.append(await asyncio.wait_for(anext(stream), 30))

    # Assert
    assert isinstance(first, PriceUpdated) and first.bid == Decimal(1)
    gap, *updates = rest
    assert isinstance(gap, Gap)
    assert (gap.symbol, gap.account, gap.resumed_at_id) == (symbol, None, oldest_id.decode())
    assert 100 <= kept < 1000  # trimmed: MAXLEN ~ keeps at least the cap
    assert [int(u.bid) for u in updates if isinstance(u, PriceUpdated)] == list(range(1002 - kept, 1002))


READER_NAME = "tickwire-test-reader"


async def kill_reader_connections(redis: Redis) -> int:
    """CLIENT KILL every connection of the reader under test (by its client name); how many there were."""
    killed = 0
    for client in await redis.client_list():
        if client.get("name") == READER_NAME:
            killed += int(await redis.client_kill_filter(_id=client["id"]))
    return killed


@pytest.mark.e2e
@pytest.mark.timeout(300)
async def test_stream_quotes_given_its_connection_killed_at_1000_quotes_s_gets_every_update_once_in_order(
        kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path) -> None:
    """Test the real pipeline at 1,000 quotes/s: a reader whose Redis connection is killed five times mid-stream
    still gets every price the price stage published for its symbols, once each and in order."""
    async with pipeline(kafka_bootstrap, redis_url, log_dir, rate=334) as p:  # 3 symbols x 334/s
        await eventually(lambda: _published_each(p, 50), 90, "prices flowing", p.ingest, p.processor)
        got: dict[str, list[str]] = {s: [] for s in p.symbols}
        gaps: list[Gap] = []
        reader = Redis.from_url(redis_url, client_name=READER_NAME)

        async def consume() -> None:
            async for item in TickwireClient(redis=reader).stream_quotes(p.symbols):
                if isinstance(item, Gap):
                    gaps.append(item)
                else:
                    got[item.symbol].append(item.timestamp)

        consuming = asyncio.create_task(consume())
        try:
            await eventually(lambda: _at_least(got, 100), 60, "the reader's first updates", p.processor)
            # Act: kill the reader's connection mid-stream, five times, letting it take 300 more updates between
            kills = 0
            for _ in range(5):
                target = sum(map(len, got.values())) + 300
                # Until it hits: right after a reconnect the reader may be between connections.
                kills += await eventually(lambda: kill_reader_connections(redis), 30, "a reader connection to kill")
                await eventually(lambda n=target: _total_at_least(got, n),  # type: ignore[misc]
                                 60, "updates after a kill", p.processor)
            for symbol in p.symbols:
                p.feed.faults.halt(symbol)
            await eventually(lambda: _caught_up(redis, p, got), 90, "the reader to catch up", p.processor)
        finally:
            await cancel_until_done([consuming])
            await reader.aclose()

    # Assert
    assert kills >= 5 and gaps == []
    for symbol in p.symbols:
        published = p.seen[symbol]
        start = published.index(got[symbol][0])
        assert got[symbol] == published[start:], symbol  # every one after the first, once, in order
        assert len(got[symbol]) > 300


async def _published_each(p: Pipeline, count: int) -> bool:
    return all(len(p.seen.get(s, [])) >= count for s in p.symbols)


async def _at_least(got: dict[str, list[str]], count: int) -> bool:
    return all(len(v) >= count for v in got.values())


async def _total_at_least(got: dict[str, list[str]], count: int) -> bool:
    return sum(map(len, got.values())) >= count


async def _caught_up(redis: Redis, p: Pipeline, got: dict[str, list[str]]) -> bool:
    """Halted symbols whose stored price is the last one published and the last one the reader got."""
    stored = await redis.mget([price_key(s) for s in p.symbols])
    for symbol, raw in zip(p.symbols, stored, strict=True):
        latest = PriceSnapshot.model_validate_json(raw).timestamp if raw else None
        if latest is None or not got[symbol] or not p.seen.get(symbol):
            return False
        if not got[symbol][-1] == p.seen[symbol][-1] == latest:
            return False
    return True
