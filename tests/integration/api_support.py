"""Support for the API, dashboard, client and status tests: the real app on real Redis, and seed data."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal

import httpx
import orjson
from fastapi import FastAPI
from redis.asyncio import Redis

from consumers.api import create_app
from consumers.api.server import api_server
from consumers.api.settings import ApiSettings
from deploy.embedded.readiness import free_port
from schemas.events import (
    AccountPnL,
    LastTrade,
    PnLUpdated,
    Position,
    PositionPnL,
    PreviousClose,
    PriceSnapshot,
    PriceUpdated,
)
from schemas.timestamps import format_ns, now_ns
from schemas.topics import (
    ACCOUNTS_KEY,
    close_key,
    last_trade_key,
    pnl_channel,
    pnl_key,
    pnl_total_key,
    positions_key,
    price_channel,
    price_key,
)
from tests.helpers import eventually


def api_settings(redis_url: str, kafka_bootstrap: str | None = None, **overrides: object) -> ApiSettings:
    """ApiSettings for an app on this test's Redis (and broker), no token unless given."""
    values: dict[str, object] = {"REDIS_URL": redis_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                                 "TICKWIRE_API_TOKEN": None, "TICKWIRE_MARK_POLICY": "mid"}
    values.update(overrides)
    return ApiSettings(**values)


@asynccontextmanager
async def api_client(settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the real app in this process (its lifespan runs around the block)."""
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test", timeout=30) as client:
        yield client


@asynccontextmanager
async def served_app(settings: ApiSettings) -> AsyncIterator[str]:
    """The app behind a real uvicorn server on a free loopback port; yields its base URL."""
    port = free_port()
    server = api_server(settings, port=port)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        if task.done():
            raise AssertionError(f"uvicorn exited: {task.exception()!r}")
        return server.started

    try:
        await eventually(started, 30, "uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@contextmanager
def threaded_server(settings: ApiSettings) -> Iterator[str]:
    """The real app behind uvicorn in a thread of its own, for synchronous callers (schemathesis); its URL."""
    port = free_port()
    server = api_server(settings, port=port)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)  # polling a flag set by another thread, with a deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def app_of(settings: ApiSettings) -> FastAPI:
    """A fresh app (for tests that look at its routes or OpenAPI only)."""
    return create_app(settings)


def ts(offset_s: float = 0.0) -> str:
    """An RFC 3339 ns timestamp ``offset_s`` from now."""
    return format_ns(now_ns() + int(offset_s * 1e9))


def price_snapshot(symbol: str, bid: str, ask: str, timestamp: str | None = None) -> PriceSnapshot:
    """A price as the price processor stores it (mid and spread computed exactly)."""
    b, a = Decimal(bid), Decimal(ask)
    return PriceSnapshot(symbol=symbol, bid=b, ask=a, mid=(b + a) / 2, spread=a - b,
                         spread_bps=((a - b) / ((a + b) / 2) * 10000).quantize(Decimal("0.0001")),
                         bid_size=1, ask_size=1, timestamp=timestamp or ts(), exchange="V")


async def seed_price(redis: Redis, symbol: str, bid: str, ask: str, timestamp: str | None = None,
                     publish: bool = False, ttl_s: int = 300) -> PriceSnapshot:
    """SET price:{symbol} (and PUBLISH price.updated.{symbol}), as the price processor does."""
    snap = price_snapshot(symbol, bid, ask, timestamp)
    await redis.set(price_key(symbol), snap.to_json(), ex=ttl_s)
    if publish:
        await redis.publish(price_channel(symbol), price_update(snap).to_json())
    return snap


def price_update(snap: PriceSnapshot) -> PriceUpdated:
    """The price.updated message of a stored price."""
    return PriceUpdated(symbol=snap.symbol, price=snap.mid, bid=snap.bid, ask=snap.ask, timestamp=snap.timestamp)


async def seed_position(redis: Redis, symbol: str, qty: str, avg: str, account: str = "default") -> Position:
    """HSET positions:{account}, as the P&L processor does."""
    position = Position(account=account, symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal(avg),
                        updated_at=ts())
    await redis.hset(positions_key(account), symbol, position.to_json())
    await redis.sadd(ACCOUNTS_KEY, account)
    return position


async def seed_close(redis: Redis, symbol: str, close: str) -> PreviousClose:
    """SET close:{symbol}."""
    previous = PreviousClose(symbol=symbol, close=Decimal(close), timestamp=ts(-86400), source="daily_bar")
    await redis.set(close_key(symbol), previous.to_json())
    return previous


async def seed_trade(redis: Redis, symbol: str, price: str) -> LastTrade:
    """SET trade:{symbol}."""
    trade = LastTrade(symbol=symbol, price=Decimal(price), size=100, timestamp=ts())
    await redis.set(last_trade_key(symbol), trade.to_json(), ex=300)
    return trade


async def seed_pnl(redis: Redis, symbol: str, qty: str, avg: str, mark: str, pnl: str, total: str,
                   account: str = "default", updated_at: str | None = None, publish: bool = False) -> PositionPnL:
    """HSET pnl:{account} + SET pnl_total:{account} (+ PUBLISH pnl.updated.{account}), as the P&L projection does."""
    at = updated_at or ts()
    valued = PositionPnL(account=account, symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal(avg),
                         mark_price=Decimal(mark), unrealized_pnl=Decimal(pnl), price_source="real-time",
                         price_timestamp=at, updated_at=at)
    await redis.hset(pnl_key(account), symbol, valued.to_json())
    await redis.set(pnl_total_key(account), AccountPnL(
        account=account, total_unrealized=Decimal(total), positions=await redis.hlen(pnl_key(account)),
        updated_at=at).to_json())
    if publish:
        await redis.publish(pnl_channel(account), pnl_update(valued, total).to_json())
    return valued


def pnl_update(valued: PositionPnL, total: str) -> PnLUpdated:
    """The pnl.updated message of a revaluation."""
    return PnLUpdated(account=valued.account, symbol=valued.symbol, qty=valued.qty, mark_price=valued.mark_price,
                      unrealized_pnl=valued.unrealized_pnl, price_source=valued.price_source,
                      total_unrealized=Decimal(total), timestamp=valued.updated_at)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, object]]]:
    """(event, JSON data) pairs of a text/event-stream response, as a browser's EventSource parses them."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield event, orjson.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue  # comment: keep-alive
        elif line.startswith("event:"):
            event = line[len("event:"):].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:"):].removeprefix(" "))
