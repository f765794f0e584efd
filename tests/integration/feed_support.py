"""Clients and fixtures shared by the local-feed integration tests (real alpaca-py, aiohttp, websockets)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import msgpack
import orjson
import pytest
from alpaca.data.live import StockDataStream

from alpaca_feed import AlpacaFeedServer

KNOWN_NS = 1_700_000_000_123_456_789  # the sub-microsecond digits must survive raw mode only
DEADLINE = 10.0


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., Awaitable[AlpacaFeedServer]]]:
    """Start servers with the given options; all are stopped at teardown."""
    servers: list[AlpacaFeedServer] = []

    async def start(**options: Any) -> AlpacaFeedServer:
        server = AlpacaFeedServer(**options)
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


class Collector:
    """An alpaca-py handler that records what it receives and lets tests wait for conditions."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    async def handle(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[list[Any]], bool], within: float = DEADLINE) -> None:
        async with asyncio.timeout(within):
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: type) -> list[Any]:
        return [item for item in self.items if isinstance(item, kind)]


@contextlib.asynccontextmanager
async def running(stream: StockDataStream, kick: AlpacaFeedServer | None = None) -> AsyncIterator[asyncio.Task]:
    """Run ``stream._run_forever()`` in this loop; stop it with ``stop_ws()`` and always ``close()``.

    alpaca-py notices a stop only between 5 s receive polls, so on a silent stream (``kick``) the
    server closes the socket to end the wait.
    """
    task = asyncio.create_task(stream._run_forever())
    try:
        yield task
    finally:
        try:
            await stream.stop_ws()
            if kick is not None:
                await kick.close_sessions(1000)
            await asyncio.wait_for(task, DEADLINE)
        finally:
            await stream.close()


@contextlib.asynccontextmanager
async def raw_client(url: str, *, as_msgpack: bool = False) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A plain aiohttp WebSocket client; JSON unless ``as_msgpack`` sends Alpaca's msgpack header."""
    headers = {"Content-Type": "application/msgpack"} if as_msgpack else {}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        yield ws


async def handshake(ws: aiohttp.ClientWebSocketResponse, **subscribe: list[str]) -> None:
    """Greeting, auth and (when channels are given) one subscribe on a JSON client."""
    assert await receive(ws, aiohttp.WSMsgType.TEXT) == [{"T": "success", "msg": "connected"}]
    assert await send_json(ws, {"action": "auth", "key": "k", "secret": "s"}) == [
        {"T": "success", "msg": "authenticated"}
    ]
    if subscribe:
        [ack] = await send_json(ws, {"action": "subscribe", **subscribe})
        assert ack["T"] == "subscription", ack


async def receive(ws: aiohttp.ClientWebSocketResponse, expect: aiohttp.WSMsgType) -> list[dict[str, Any]]:
    message = await ws.receive(timeout=DEADLINE)
    assert message.type is expect, message
    return orjson.loads(message.data) if expect is aiohttp.WSMsgType.TEXT else msgpack.unpackb(message.data)


async def send_json(ws: aiohttp.ClientWebSocketResponse, payload: object) -> list[dict[str, Any]]:
    await ws.send_str(orjson.dumps(payload).decode())
    return await receive(ws, aiohttp.WSMsgType.TEXT)


def quote(symbol: str, t: object, bp: float, **extra: Any) -> dict[str, Any]:
    return {"T": "q", "S": symbol, "bx": "V", "bp": bp, "bs": 2, "ax": "Q", "ap": round(bp + 0.02, 2),
            "as": 3, "c": ["R"], "z": "C", "t": t, **extra}  # fmt: skip
