"""The projections' Lua scripts on a real Redis: batches, exact totals, and back after a script flush."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from redis.asyncio import Redis

from domain.price_payloads import PricePayloads, payloads_of
from processors.pnl_projection import PnLProjector
from processors.redis_projection import PriceProjector
from schemas.events import PnLUpdated, PositionPnL, PriceEvent
from schemas.timestamps import format_ns
from schemas.topics import (
    PRICE_STREAMS_KEY,
    STREAM_DATA_FIELD,
    pnl_channel,
    pnl_key,
    pnl_stream,
    pnl_total_key,
    positions_key,
    price_channel,
    price_key,
    price_stream,
)
from tests.helpers import unique_symbol

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000_000_000


def price(symbol: str, bid: str, t_ns: int) -> PricePayloads:
    bid_d = Decimal(bid)
    return payloads_of(PriceEvent(symbol=symbol, bid=bid_d, ask=bid_d + Decimal("0.02"), mid=bid_d + Decimal("0.01"),
                      spread=Decimal("0.02"), spread_bps=Decimal("1"), bid_size=1, ask_size=1,
                      timestamp=format_ns(t_ns), exchange="V"))


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


async def test_price_projector_given_new_redelivered_and_older_prices_streams_each_change_once_capped(
        redis: Redis) -> None:
    """Test that the stream gets exactly what the channel gets (a redelivery or an older price adds nothing),
    expires with the price, names its symbol in the set readers of every symbol use, and stays near its cap."""
    # Arrange
    symbol = unique_symbol("X")
    stream = price_stream(symbol)
    projector = PriceProjector(redis, ttl_seconds=60, stream_maxlen=100)
    pubsub = redis.pubsub()
    await pubsub.subscribe(price_channel(symbol))
    await pubsub.get_message(timeout=1)
    batch = [price(symbol, "10.00", T0), price(symbol, "11.00", T0 + 1)]
    # Act
    await projector.project(batch)
    await projector.project(batch)  # redelivered
    await projector.project([price(symbol, "9.00", T0 - 1)])  # older than the stored price
    # Assert
    published = []
    while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)) is not None:
        published.append(message["data"])
    entries = [fields[STREAM_DATA_FIELD.encode()] for _, fields in await redis.xrange(stream)]
    assert entries == published == [p.update for p in batch]
    assert await redis.smembers(PRICE_STREAMS_KEY) == {symbol.encode()}
    assert 0 < await redis.ttl(stream) <= 60
    await projector.project([price(symbol, str(20 + n), T0 + 10 + n) for n in range(1000)])
    assert 100 <= await redis.xlen(stream) < 300  # MAXLEN ~ 100: trimmed a node at a time, never below the cap
    await pubsub.aclose()


async def _script_commands(redis: Redis) -> int:
    """SCRIPT ... commands served so far (Redis 6 counts them as cmdstat_script, 7 per subcommand)."""
    stats = await redis.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.startswith("cmdstat_script"))


def pnl(account: str, symbol: str, qty: str, mark: str | None, t_ns: int) -> PositionPnL:
    mark_d = Decimal(mark) if mark else None
    return PositionPnL(account=account, symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal("100"),
                       mark_price=mark_d, unrealized_pnl=(mark_d - 100) * Decimal(qty) if mark_d else None,
                       price_source="real-time" if mark_d else "none",
                       price_timestamp=format_ns(t_ns) if mark_d else None, updated_at=format_ns(t_ns + 1))


async def test_pnl_projector_given_two_accounts_and_a_close_keeps_exact_totals_and_publishes_each_change(
    redis: Redis,
) -> None:
    """Test one batch across accounts: hashes, totals in cents, restored positions, one message per change."""
    # Arrange
    first, second = f"acct-{unique_symbol('A')}", f"acct-{unique_symbol('B')}"
    long_sym, short_sym = unique_symbol("L"), unique_symbol("S")
    projector = PnLProjector(redis, trade_ttl_seconds=60)
    pubsub = redis.pubsub()
    await pubsub.subscribe(pnl_channel(first), pnl_channel(second))
    await pubsub.get_message(timeout=1)
    await pubsub.get_message(timeout=1)
    batch = [pnl(first, long_sym, "10", "101.50", T0), pnl(second, long_sym, "-5", "101.50", T0),
             pnl(first, short_sym, "-3", "99.99", T0), pnl(first, long_sym, "10", "102.00", T0 + 10)]
    # Act
    await projector.project(batch, payloads=[p.to_json() for p in batch])
    await projector.project(batch[1:])  # redelivered newest values: change nothing, publish nothing
    await projector.project([pnl(first, short_sym, "0", "99.99", T0 + 20)])  # closed
    # Assert
    totals = {a: orjson.loads(await redis.get(pnl_total_key(a))) for a in (first, second)}
    assert (totals[first]["total_unrealized"], totals[first]["positions"]) == ("20.00", 1)  # 10 x 2.00
    assert (totals[second]["total_unrealized"], totals[second]["positions"]) == ("-7.50", 1)
    assert set(await redis.hkeys(pnl_key(first))) == {long_sym.encode()}
    assert orjson.loads(await redis.hget(positions_key(second), long_sym))["qty"] == "-5"  # restored
    messages, raw = [], []
    while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)) is not None:
        messages.append(orjson.loads(message["data"]))
        raw.append((message["channel"], message["data"]))
    assert len(messages) == 5  # four changes and the close; the redelivery published nothing
    for account in (first, second):  # the account's stream holds exactly what its channel received, in order
        entries = await redis.xrange(pnl_stream(account))
        assert [fields[STREAM_DATA_FIELD.encode()] for _, fields in entries] == [
            data for channel, data in raw if channel == pnl_channel(account).encode()]
    last = batch[3]
    expected = PnLUpdated(account=last.account, symbol=last.symbol, qty=last.qty, mark_price=last.mark_price,
                          unrealized_pnl=last.unrealized_pnl, price_source=last.price_source,
                          total_unrealized=Decimal("20.03"), timestamp=last.updated_at,
                          price_timestamp=last.price_timestamp)
    # first: 15.00, +0.03 (short), then long 15.00 -> 20.00 (the order across accounts is not guaranteed).
    assert [m for m in messages if m["account"] == first][2] == orjson.loads(expected.to_json())
    await pubsub.aclose()
