"""GET /api/v1/stream over a real uvicorn server: a snapshot, then every change, no gap and no duplicate."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from consumers.api.server import api_server
from deploy.embedded.readiness import free_port
from schemas.events import AccountPnL, PnLUpdated, PositionPnL
from schemas.timestamps import format_ns, now_ns
from schemas.topics import pnl_channel, pnl_key, pnl_total_key, price_channel, price_key
from tests.helpers import eventually, unique_symbol
from tests.integration.api_support import api_settings, price_snapshot, price_update, seed_price, served_app, sse_events

pytestmark = pytest.mark.integration

ACCOUNT = "stream-acct"


class SequencePublisher:
    """Writes price n and P&L n (n = 1, 2, ...) the way the processors do: SET/HSET and PUBLISH atomically."""

    def __init__(self, redis: Redis, symbol: str) -> None:
        self.redis = redis
        self.symbol = symbol
        self.n = 0
        self.t0 = now_ns()

    async def publish_next(self) -> None:
        self.n += 1
        at = format_ns(self.t0 + self.n * 1_000_000)
        snap = price_snapshot(self.symbol, str(Decimal(100) + Decimal(self.n) / 100), "200.00", at)
        valued = PositionPnL(account=ACCOUNT, symbol=self.symbol, qty=Decimal(1), avg_entry_price=Decimal(1),
                             mark_price=Decimal(2), unrealized_pnl=Decimal(self.n), price_source="real-time",
                             price_timestamp=at, updated_at=at)
        update = PnLUpdated(account=ACCOUNT, symbol=self.symbol, qty=Decimal(1), mark_price=Decimal(2),
                            unrealized_pnl=Decimal(self.n), price_source="real-time",
                            total_unrealized=Decimal(self.n), timestamp=at)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(price_key(self.symbol), snap.to_json())
        pipe.publish(price_channel(self.symbol), price_update(snap).to_json())
        pipe.hset(pnl_key(ACCOUNT), self.symbol, valued.to_json())
        pipe.set(pnl_total_key(ACCOUNT), AccountPnL(account=ACCOUNT, total_unrealized=Decimal(self.n), positions=1,
                                                    updated_at=at).to_json())
        pipe.publish(pnl_channel(ACCOUNT), update.to_json())
        await pipe.execute()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.publish_next()
            await asyncio.sleep(0.002)  # pacing of the load, not synchronisation


def price_n(bid: object) -> int:
    return int((Decimal(str(bid)) - 100) * 100)


async def follow(base_url: str, symbol: str, count: int) -> tuple[int, list[int], int, list[int]]:
    """Connect, read the snapshot's n, then ``count`` price and pnl updates' n."""
    prices: list[int] = []
    pnls: list[int] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client, client.stream(
            "GET", "/api/v1/stream", params={"symbols": symbol, "account": ACCOUNT}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        kind, snapshot = await anext(events)
        assert kind == "snapshot"
        snap_price = price_n(snapshot["prices"][symbol]["bid"])  # type: ignore[index]
        snap_pnl = int(Decimal(snapshot["pnl"][symbol]["unrealized_pnl"]))  # type: ignore[index]
        async for kind, data in events:
            if kind == "price":
                prices.append(price_n(data["bid"]))
            elif kind == "pnl":
                pnls.append(int(Decimal(str(data["unrealized_pnl"]))))
            if len(prices) >= count and len(pnls) >= count:
                break
    return snap_price, prices[:count], snap_pnl, pnls[:count]


async def test_stream_given_updates_during_connect_has_no_gap_and_no_duplicate(redis_url: str, redis: Redis) -> None:
    """Test that clients joining while updates pour in see snapshot n, then exactly n+1, n+2, ..."""
    # Arrange
    symbol = unique_symbol("G")
    publisher = SequencePublisher(redis, symbol)
    await publisher.publish_next()
    stop = asyncio.Event()
    async with served_app(api_settings(redis_url)) as base_url:
        pumping = asyncio.create_task(publisher.run(stop))
        try:
            # Act: three clients joining at different moments of the stream
            async def join_later(after_n: int) -> tuple[int, list[int], int, list[int]]:
                await eventually(lambda: _reached(publisher, after_n), 60, f"update {after_n}")
                return await follow(base_url, symbol, count=40)

            results = await asyncio.gather(join_later(5), join_later(25), join_later(60))
        finally:
            stop.set()
            await pumping

    # Assert
    for snap_price, prices, snap_pnl, pnls in results:
        assert prices == list(range(snap_price + 1, snap_price + 41)), (snap_price, prices)
        assert pnls == list(range(snap_pnl + 1, snap_pnl + 41)), (snap_pnl, pnls)


async def _reached(publisher: SequencePublisher, n: int) -> bool:
    return publisher.n >= n


async def test_stream_given_no_symbols_snapshots_every_price_then_streams_changes(redis_url: str,
                                                                                   redis: Redis) -> None:
    """Test the unfiltered stream: every stored price in the snapshot, then any symbol's change."""
    first, second = unique_symbol("H"), unique_symbol("J")
    await seed_price(redis, first, "10.00", "10.02")
    await seed_price(redis, second, "20.00", "20.02")
    async with served_app(api_settings(redis_url)) as base_url, httpx.AsyncClient(
            base_url=base_url, timeout=60) as client, client.stream("GET", "/api/v1/stream") as response:
        events = sse_events(response)
        kind, snapshot = await anext(events)
        update = await seed_price(redis, second, "20.10", "20.12", publish=True)
        kind_after, data = await anext(events)

    assert kind == "snapshot" and set(snapshot["prices"]) == {first, second}  # type: ignore[arg-type]
    assert snapshot["pnl"] == {} and snapshot["total"] is None and snapshot["account"] == "default"
    assert (kind_after, data) == ("price", price_update(update).model_dump(mode="json"))


async def test_stream_given_client_disconnects_drops_its_redis_subscription(redis_url: str, redis: Redis) -> None:
    symbol = unique_symbol("K")
    channel = price_channel(symbol)
    async with served_app(api_settings(redis_url)) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client, client.stream(
                "GET", "/api/v1/stream", params={"symbols": symbol}) as response:
            events = sse_events(response)  # held: a dropped generator would close the response when collected
            kind, _ = await anext(events)
            assert kind == "snapshot"
            await eventually(lambda: _subscribers(redis, channel, 1), 30, "the stream's subscription")
        await eventually(lambda: _subscribers(redis, channel, 0), 30, "the subscription to be dropped")


async def _subscribers(redis: Redis, channel: str, expected: int) -> bool:
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count) == expected


async def test_stream_given_server_shutting_down_ends_cleanly_so_the_server_can_exit(redis_url: str) -> None:
    """Test that on shutdown an open stream is finished (complete chunked body), not cut off after a timeout."""
    port = free_port()
    server = api_server(api_settings(redis_url), port=port)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: _started(server), 30, "uvicorn to start")
    async with httpx.AsyncClient(timeout=60) as client, client.stream(
            "GET", f"http://127.0.0.1:{port}/api/v1/stream") as response:
        events = sse_events(response)
        kind, _ = await anext(events)
        server.should_exit = True

        rest = [event async for event in events]  # raises RemoteProtocolError if the server cut the body

    assert kind == "snapshot" and rest == []
    await asyncio.wait_for(serving, 30)


async def _started(server: uvicorn.Server) -> bool:
    return server.started
