"""Shared pieces of the ingest's integration tests (no tests here): a running IngestService, feeds, topics.

Everything is real: the local Alpaca feed (real alpaca-py client), the session's broker and Redis. Each
test gets its own symbols, control topic and Redis database, so tests sharing the broker stay independent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from alpaca_feed.server import AlpacaFeedServer
from producers.alpaca_ingest import IngestService
from producers.settings import IngestSettings
from schemas.events import IngestStatus, SubscriptionRequest
from schemas.symbols import normalize_symbol
from schemas.timestamps import format_ns, now_ns
from schemas.topics import SUBSCRIPTIONS, subscription_key
from tests.helpers import eventually, read_topic_until
from tickwire.topic_admin import ensure_topics

# Small timings so failures and recoveries happen in test time (production defaults are in settings).
FAST: dict[str, Any] = {
    "reconnect_base_s": 0.1,
    "reconnect_max_s": 0.8,
    "reconnect_jitter": 0.0,
    "gap_settle_s": 1.0,
    "ingest_lease_ttl_s": 1.0,
    "mute_after_s": 30.0,
    "quiet_after_s": 30.0,
    "ingest_metrics_port": 0,  # in-process ingests serve no fixed port (a test asks for one when it scrapes)
}
DEADLINE = 45.0


@dataclass
class RunningIngest:
    """An IngestService running in this test's loop."""

    service: IngestService
    stop: asyncio.Event
    task: asyncio.Task[None]
    settings: IngestSettings

    @property
    def status(self) -> IngestStatus:
        """A fresh status snapshot."""
        return self.service.status()

    async def shutdown(self, timeout: float = 10.0) -> float:
        """Stop it as SIGTERM would; returns the seconds it took."""
        started = time.monotonic()
        self.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), timeout)
        except TimeoutError:  # show where it hangs
            for task in asyncio.all_tasks():
                print(f"{task.get_name()}: {' -> '.join(_await_chain(task.get_coro()))}", file=sys.stderr)
            raise
        return time.monotonic() - started


def _await_chain(coro: Any) -> list[str]:
    """Where a suspended coroutine waits, outermost first (a task's own stack shows one frame only)."""
    chain = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_name} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return chain


@asynccontextmanager
async def running_ingest(
    kafka_bootstrap: str,
    redis_url: str | None,
    feed: AlpacaFeedServer,
    symbols: Iterable[str],
    *,
    control_topic: str | None = None,
    instance: str | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningIngest]:
    """Run an ingest against ``feed`` until the block ends (then stop it and wait)."""
    settings = IngestSettings(
        kafka_bootstrap_servers=kafka_bootstrap, redis_url=redis_url, alpaca_stream_url=feed.url(),
        symbols=",".join(symbols), **{**FAST, **overrides},
    )
    control_topic = control_topic or f"subscriptions-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, 1, [dataclasses.replace(SUBSCRIPTIONS, name=control_topic)])
    redis = Redis.from_url(redis_url) if redis_url else None
    service = IngestService(settings, redis=redis, instance=instance, control_topic=control_topic)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop), name=f"ingest-{service.instance}")
    ingest = RunningIngest(service, stop, task, settings)
    try:
        yield ingest
    finally:
        try:
            await ingest.shutdown(timeout=15)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            if redis is not None:
                await redis.aclose()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


MakeFeed = Callable[..., Awaitable[AlpacaFeedServer]]


@asynccontextmanager
async def feed_factory() -> AsyncIterator[MakeFeed]:
    """Start local Alpaca feeds with the given options; all are stopped when the block ends."""
    servers: list[AlpacaFeedServer] = []

    async def start(**options: Any) -> AlpacaFeedServer:
        server = AlpacaFeedServer(**options)
        await server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            await server.stop()


async def until(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Wait for a synchronous condition with a deadline."""

    async def probe() -> Any:
        return check()

    return await eventually(probe, timeout, what)


async def connected(ingest: RunningIngest, timeout: float = DEADLINE) -> None:
    """Wait until the ingest's stream is connected."""
    await until(lambda: ingest.status.connected, "the ingest to connect", timeout)


async def send_requests(bootstrap: str, topic: str, requests: Iterable[tuple[str, str, str]]) -> None:
    """Publish (symbol, action, source) control requests to ``topic`` (created if new), keyed source:symbol."""
    await ensure_topics(bootstrap, 1, [dataclasses.replace(SUBSCRIPTIONS, name=topic)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for symbol, action, source in requests:
            request = SubscriptionRequest(symbol=symbol, action=action, source=source,  # type: ignore[arg-type]
                                          requested_at=format_ns(now_ns()))
            try:  # one key per source and symbol: its requests stay in order, and compaction keeps the last
                key = subscription_key(source, normalize_symbol(symbol))
            except ValueError:
                key = subscription_key(source, symbol)
            await producer.send_and_wait(topic, request.to_json(), key=key.encode())
    finally:
        await producer.stop()


def quote(symbol: str, bid: float, t_ns: int) -> dict[str, Any]:
    """A valid Alpaca quote message (``t`` in integer ns, as ``inject`` takes it)."""
    return {"T": "q", "S": symbol, "bx": "V", "bp": bid, "bs": 1, "ax": "V", "ap": round(bid + 0.02, 2), "as": 1,
            "c": ["R"], "z": "C", "t": t_ns}


def trade(symbol: str, price: float, t_ns: int, trade_id: int) -> dict[str, Any]:
    """A valid Alpaca trade message."""
    return {"T": "t", "S": symbol, "i": trade_id, "x": "V", "p": price, "s": 100, "c": ["@"], "z": "C", "t": t_ns}


async def records_of(bootstrap: str, topic: str, symbol: str, at_least: int,
                     timeout: float = DEADLINE, where: Callable[[dict[str, Any]], bool] = lambda v: True
                     ) -> list[dict[str, Any]]:
    """Read ``topic`` until ``at_least`` values of ``symbol`` (matching ``where``) are there; returns them."""
    def mine(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [v for v in values if (v.get("S") or v.get("symbol")) == symbol and where(v)]

    values = await read_topic_until(bootstrap, topic, lambda vs: len(mine(vs)) >= at_least, timeout)
    return mine(values)


async def backfilled(bootstrap: str, topic: str, symbols: Iterable[str], timeout: float = DEADLINE
                     ) -> list[dict[str, Any]]:
    """Read ``topic`` until at least one backfilled value of one of ``symbols`` is there; returns all of them."""
    wanted = set(symbols)

    def mine(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [v for v in values if v.get("S") in wanted and v.get("source") == "backfill"]

    return mine(await read_topic_until(bootstrap, topic, lambda vs: bool(mine(vs)), timeout))


def dumps(value: Any) -> str:
    """Readable JSON for assertion messages."""
    return orjson.dumps(value, default=str).decode()
