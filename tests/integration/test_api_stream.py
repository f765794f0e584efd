"""GET /api/v1/stream over a real uvicorn server: a snapshot, then every change, no gap and no duplicate."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from consumers.api.server import api_server
from consumers.stream_reader import Position, parse_id
from deploy.embedded.readiness import free_port
from processors.redis_projection import PriceProjector
from schemas.events import AccountPnL, PnLUpdated, PositionPnL
from schemas.timestamps import format_ns, now_ns
from schemas.topics import pnl_channel, pnl_key, pnl_total_key, price_channel, price_key, price_stream
from tests.helpers import eventually, unique_symbol
from tests.integration.api_support import (
    api_settings,
    blocked_readers,
    price_snapshot,
    price_update,
    queue_pnl_entry,
    queue_price_entry,
    seed_price,
    served_app,
    sse_events,
    sse_events_with_ids,
)
from tests.integration.test_projection_scripts import T0, price

pytestmark = pytest.mark.integration

ACCOUNT = "stream-acct"


class SequencePublisher:
    """Writes price n and P&L n (n = 1, 2, ...) the way the processors do: SET/HSET, PUBLISH and XADD atomically."""

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
        queue_price_entry(pipe, self.symbol, price_update(snap).to_json())
        pipe.hset(pnl_key(ACCOUNT), self.symbol, valued.to_json())
        pipe.set(pnl_total_key(ACCOUNT), AccountPnL(account=ACCOUNT, total_unrealized=Decimal(self.n), positions=1,
                                                    updated_at=at).to_json())
        pipe.publish(pnl_channel(ACCOUNT), update.to_json())
        queue_pnl_entry(pipe, ACCOUNT, update.to_json())
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


async def test_stream_given_client_disconnects_stops_reading_redis(redis_url: str, redis: Redis) -> None:
    symbol = unique_symbol("K")
    async with served_app(api_settings(redis_url)) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client, client.stream(
                "GET", "/api/v1/stream", params={"symbols": symbol}) as response:
            events = sse_events(response)  # held: a dropped generator would close the response when collected
            kind, _ = await anext(events)
            assert kind == "snapshot"
            await eventually(lambda: _blocked(redis, 1), 30, "the stream's blocking read")
        await eventually(lambda: _blocked(redis, 0), 30, "the blocking read to end")


async def _blocked(redis: Redis, expected: int) -> bool:
    return await blocked_readers(redis) == expected


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


class ProjectedPrices:
    """Prices through the price stage's own projection (PriceProjector), ``rate`` a second over ``symbols`` in
    batches of 10 (so one Lua step writes several streams in one millisecond); symbol s's n-th price has bid n.
    Records what was published on the symbols' channels, as the stage's pub/sub readers see it."""

    def __init__(self, redis: Redis, symbols: list[str], rate: int = 1000) -> None:
        self.projector = PriceProjector(redis, ttl_seconds=300)
        self.redis = redis
        self.symbols = symbols
        self.rate = rate
        self.n = dict.fromkeys(symbols, 0)
        self.sent = 0
        self.published: dict[str, list[int]] = {s: [] for s in symbols}

    async def run(self, stop: asyncio.Event) -> None:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(*(price_channel(s) for s in self.symbols))
        listening = asyncio.create_task(self._listen(pubsub))
        started, t0 = time.monotonic(), now_ns()
        try:
            while not stop.is_set():
                batch = []
                for _ in range(10):
                    symbol = self.symbols[self.sent % len(self.symbols)]
                    self.n[symbol] += 1
                    self.sent += 1
                    batch.append(price(symbol, str(self.n[symbol]), t0 + self.sent * 1000))
                await self.projector.project(batch)
                ahead = self.sent / self.rate - (time.monotonic() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)  # pacing of the load, not synchronisation
            await eventually(lambda: self._all_published(), 30, "the last publishes")
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await pubsub.aclose()

    async def _listen(self, pubsub: PubSub) -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                update = orjson.loads(message["data"])
                self.published[update["symbol"]].append(int(Decimal(update["bid"])))

    async def _all_published(self) -> bool:
        return all(len(self.published[s]) == self.n[s] for s in self.symbols)


@dataclass
class Follower:
    """An EventSource in Python: reads the stream, and when it ends or cannot connect, connects again sending
    the id of the last event it got as ``Last-Event-ID``. Records bids per symbol, snapshots and connections."""

    url: str
    symbols: list[str]
    got: dict[str, list[int]] = field(default_factory=dict)
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0
    last_id: str = ""

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            while True:
                headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
                try:
                    async with client.stream("GET", self.url, params={"symbols": ",".join(self.symbols),
                                                                      "account": ACCOUNT}, headers=headers) as response:
                        if response.status_code == 200:
                            self.connections += 1
                            await self._read(response)
                except httpx.TransportError:
                    pass  # the API is down: try again, as a browser does
                await asyncio.sleep(0.05)  # the browser's reconnection delay (the stream's retry:), not synchronisation

    async def _read(self, response: httpx.Response) -> None:
        async for kind, data, event_id in sse_events_with_ids(response):
            if kind == "snapshot":
                self.snapshots.append(data)
            elif kind == "gap":
                self.gaps.append(data)
            elif kind == "price":
                self.got.setdefault(str(data["symbol"]), []).append(int(Decimal(str(data["bid"]))))
            self.last_id = event_id

    def total(self) -> int:
        return sum(map(len, self.got.values()))


async def test_stream_given_the_api_restarted_under_a_reader_at_1000_prices_s_resumes_exactly_once_in_order(
        redis_url: str, redis: Redis) -> None:
    """Test that a reader of two symbols whose API is restarted mid-stream (1,000 prices/s through the price
    projection) gets one snapshot, then every price published after it, once each and in order."""
    # Arrange
    symbols = [unique_symbol("R"), unique_symbol("S")]
    prices = ProjectedPrices(redis, symbols)
    port = free_port()
    settings = api_settings(redis_url)
    follower = Follower(f"http://127.0.0.1:{port}/api/v1/stream", symbols)
    stop = asyncio.Event()
    pumping = asyncio.create_task(prices.run(stop))
    try:
        await eventually(lambda: _sent(prices, 100), 30, "prices flowing")
        following = asyncio.create_task(follower.run())
        async with served_app(settings, port):
            await eventually(lambda: _followed(follower, 500), 60, "500 prices through the first API")
        # Act: the API is down for a while (the stream ended as the server stopped), then back on the same port
        down_until = prices.sent + 500
        await eventually(lambda: _sent(prices, down_until), 30, "500 prices while the API is down")
        async with served_app(settings, port):
            await eventually(lambda: _connections(follower, 2), 60, "the reader to reconnect")
            more = follower.total() + 500
            await eventually(lambda: _followed(follower, more), 60, "500 more prices")
            stop.set()
            await pumping
            await eventually(lambda: _followed_all(follower, prices), 60, "every price")
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
    finally:
        stop.set()
        await asyncio.gather(pumping, return_exceptions=True)

    # Assert
    [snapshot] = follower.snapshots  # the reconnect resumed: no second snapshot
    assert follower.gaps == [] and follower.connections >= 2
    for symbol in symbols:
        first = int(Decimal(snapshot["prices"][symbol]["bid"]))
        assert follower.got[symbol] == list(range(first + 1, prices.n[symbol] + 1)), symbol
        assert prices.published[symbol] == list(range(1, prices.n[symbol] + 1))  # what the projection published


async def _sent(prices: ProjectedPrices, count: int) -> bool:
    return prices.sent >= count


async def _followed(follower: Follower, count: int) -> bool:
    return follower.total() >= count


async def _connections(follower: Follower, count: int) -> bool:
    return follower.connections >= count


async def _followed_all(follower: Follower, prices: ProjectedPrices) -> bool:
    return all(follower.got.get(s, [0])[-1] >= prices.n[s] for s in prices.symbols)


async def test_stream_given_a_last_event_id_older_than_the_cap_sends_one_gap_then_every_kept_change(
        redis_url: str, redis: Redis) -> None:
    """Test a reader coming back after the cap trimmed what it missed: a ``gap`` event, then the changes kept."""
    # Arrange: the reader got price 1 (its event id says so), then 1,000 more went past a cap of 100
    symbol = unique_symbol("Y")
    stream = price_stream(symbol)
    projector = PriceProjector(redis, ttl_seconds=60, stream_maxlen=100)
    await projector.project([price(symbol, "1", T0 + 1)])
    [(first_id, _)] = await redis.xrange(stream)  # type: ignore[misc]
    for chunk in range(10):
        await projector.project([price(symbol, str(n), T0 + n) for n in range(2 + chunk * 100, 102 + chunk * 100)])
    kept = [entry_id.decode() for entry_id, _ in await redis.xrange(stream)]  # type: ignore[misc]
    last_seen = Position(parse_id(first_id), stream).token()
    async with served_app(api_settings(redis_url)) as base_url, httpx.AsyncClient(base_url=base_url,
                                                                                    timeout=60) as client:
        # Act
        async with client.stream("GET", "/api/v1/stream", params={"symbols": symbol},
                                 headers={"Last-Event-ID": last_seen}) as response:
            events = sse_events_with_ids(response)
            got = [await anext(events) for _ in range(1 + len(kept))]
        async with client.stream("GET", "/api/v1/stream", params={"symbols": symbol},
                                 headers={"Last-Event-ID": "not-a-position"}) as response:
            kind_for_garbage, _ = await anext(sse_events(response))

    # Assert
    assert got[0] == ("gap", {"stream": stream, "symbol": symbol, "account": None,
                              "last_seen_id": first_id.decode(), "resumed_at_id": kept[0]}, "")
    assert [(kind, int(Decimal(str(data["bid"]))), event_id) for kind, data, event_id in got[1:]] == [
        ("price", n, Position(parse_id(k), stream).token()) for n, k in zip(range(1002 - len(kept), 1002), kept,
                                                                            strict=True)]
    assert 100 <= len(kept) < 1000 and kind_for_garbage == "snapshot"
