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
from redis.asyncio.client import Pipeline

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
    PRICE_STREAMS_KEY,
    STREAM_DATA_FIELD,
    close_key,
    last_trade_key,
    pnl_channel,
    pnl_key,
    pnl_stream,
    pnl_total_key,
    positions_key,
    price_channel,
    price_key,
    price_stream,
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
async def served_app(settings: ApiSettings, port: int | None = None) -> AsyncIterator[str]:
    """The app behind a real uvicorn server on ``port`` (default: a free loopback port); yields its base URL."""
    port = port or free_port()
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
    """SET price:{symbol} and XADD price.stream.{symbol} (and PUBLISH price.updated.{symbol}) in one
    transaction, as the price processor does."""
    snap = price_snapshot(symbol, bid, ask, timestamp)
    message = price_update(snap).to_json()
    pipe = redis.pipeline(transaction=True)
    pipe.set(price_key(symbol), snap.to_json(), ex=ttl_s)
    if publish:
        pipe.publish(price_channel(symbol), message)
    queue_price_entry(pipe, symbol, message, ttl_s)
    await pipe.execute()
    return snap


def queue_price_entry(pipe: Pipeline, symbol: str, message: bytes, ttl_s: int = 300) -> None:
    """XADD a price.updated message to the symbol's stream, as the price projection does with every change."""
    stream = price_stream(symbol)
    pipe.xadd(stream, {STREAM_DATA_FIELD: message}, maxlen=10_000, approximate=True)
    pipe.expire(stream, ttl_s)
    pipe.sadd(PRICE_STREAMS_KEY, symbol)


def queue_pnl_entry(pipe: Pipeline, account: str, message: bytes) -> None:
    """XADD a pnl.updated message to the account's stream, as the P&L projection does with every change."""
    pipe.xadd(pnl_stream(account), {STREAM_DATA_FIELD: message}, maxlen=10_000, approximate=True)


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
    """HSET pnl:{account} + SET pnl_total:{account} + XADD pnl.stream.{account} (+ PUBLISH pnl.updated.{account}),
    as the P&L projection does."""
    at = updated_at or ts()
    valued = PositionPnL(account=account, symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal(avg),
                         mark_price=Decimal(mark), unrealized_pnl=Decimal(pnl), price_source="real-time",
                         price_timestamp=at, updated_at=at)
    await redis.hset(pnl_key(account), symbol, valued.to_json())
    message = pnl_update(valued, total).to_json()
    pipe = redis.pipeline(transaction=True)
    pipe.set(pnl_total_key(account), AccountPnL(
        account=account, total_unrealized=Decimal(total), positions=await redis.hlen(pnl_key(account)),
        updated_at=at).to_json())
    if publish:
        pipe.publish(pnl_channel(account), message)
    queue_pnl_entry(pipe, account, message)
    await pipe.execute()
    return valued


def pnl_update(valued: PositionPnL, total: str) -> PnLUpdated:
    """The pnl.updated message of a revaluation."""
    return PnLUpdated(account=valued.account, symbol=valued.symbol, qty=valued.qty, mark_price=valued.mark_price,
                      unrealized_pnl=valued.unrealized_pnl, price_source=valued.price_source,
                      total_unrealized=Decimal(total), timestamp=valued.updated_at)


async def blocked_readers(redis: Redis) -> int:
    """Connections to this client's database blocked in XREAD: stream readers waiting for news (they block only
    once they know where each of their streams stood)."""
    db = int(redis.connection_pool.connection_kwargs.get("db", 0))
    clients = await redis.client_list()
    return sum(1 for c in clients
               if c.get("cmd") == "xread" and "b" in c.get("flags", "") and int(c.get("db", -1)) == db)


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, object]]]:
    """(event, JSON data) pairs of a text/event-stream response, as a browser's EventSource parses them."""
    async for event, data, _ in sse_events_with_ids(response):
        yield event, data


async def sse_events_with_ids(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, object], str]]:
    """(event, JSON data, last event id) of a text/event-stream response, as a browser's EventSource parses them
    (the last event id stays what it was when an event has no ``id:``)."""
    event, data, last_id = "message", [], ""
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield event, orjson.loads("\n".join(data)), last_id
            event, data = "message", []
        elif line.startswith(":"):
            continue  # comment: keep-alive
        elif line.startswith("event:"):
            event = line[len("event:"):].strip()
        elif line.startswith("id:"):
            last_id = line[len("id:"):].removeprefix(" ")
        elif line.startswith("data:"):
            data.append(line[len("data:"):].removeprefix(" "))
