"""Latency of ``GET /api/v1/positions/pnl/realtime`` for one account of 1,000 positions (target: < 50 ms).

    .venv/bin/python -m bench.api_realtime_pnl [--positions 1000] [--requests 300] [--moving 1.0] [--policy mid]

Seeds an embedded redis-server (or REDIS_URL's database, which it flushes only with --flush) with
positions, live prices for most symbols and only a previous close for a tenth of them, serves the real
app as ``tickwire api`` in its own process, and times real HTTP requests end to end from this process.
Between two requests (untimed) a fraction ``--moving`` of the live prices gets a new quote: 1.0 (the
default) is the worst case of a busy market, where no request finds a price it saw before; 0 is a
quiet one (after hours, every mark a close).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path

import httpx
import psutil
from redis.asyncio import Redis

from deploy.embedded import EmbeddedRedis
from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from schemas.events import Position, PreviousClose, PriceSnapshot
from schemas.timestamps import format_ns, now_ns
from schemas.topics import close_key, positions_key, price_key

ACCOUNT = "bench-realtime"


def symbols(positions: int) -> list[str]:
    """The benchmark's symbols, one per position."""
    return [f"B{i:05d}" for i in range(positions)]


async def seed(redis: Redis, positions: int) -> None:
    """``positions`` positions on as many symbols; 90 % have a live price, the rest only a close."""
    rng = random.Random(7)
    at = format_ns(now_ns())
    pipe = redis.pipeline(transaction=False)
    for symbol in symbols(positions):
        mid = Decimal(rng.randint(1_000, 50_000)) / 100
        qty = Decimal(rng.choice([-1, 1]) * rng.randint(1, 500))
        pipe.hset(positions_key(ACCOUNT), symbol, Position(
            account=ACCOUNT, symbol=symbol, qty=qty, avg_entry_price=mid + Decimal(rng.randint(-500, 500)) / 100,
            updated_at=at).to_json())
        pipe.set(close_key(symbol), PreviousClose(symbol=symbol, close=mid, timestamp=at, source="daily_bar").to_json())
    await pipe.execute()
    await move_prices(redis, positions, rng)


async def move_prices(redis: Redis, positions: int, rng: random.Random, fraction: float = 1.0) -> None:
    """A new quote (new bytes) for ``fraction`` of the symbols that have a live price."""
    at = format_ns(now_ns())
    pipe = redis.pipeline(transaction=False)
    for i, symbol in enumerate(symbols(positions)):
        if i % 10 and rng.random() < fraction:
            mid = Decimal(rng.randint(1_000, 50_000)) / 100
            bid, ask = mid - Decimal("0.01"), mid + Decimal("0.01")
            pipe.set(price_key(symbol), PriceSnapshot(
                symbol=symbol, bid=bid, ask=ask, mid=mid, spread=ask - bid, spread_bps=Decimal("1"), bid_size=1,
                ask_size=1, timestamp=at, exchange="V").to_json(), ex=3600)
    await pipe.execute()


async def start_api(redis_url: str, policy: str, log_dir: Path) -> tuple[ManagedProcess, str]:
    """``tickwire api`` in its own process (as deployed), on a free port; returns it and its base URL."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "TICKWIRE_API_PORT": str(port), "TICKWIRE_MARK_POLICY": policy,
           "TICKWIRE_LOG_LEVEL": "WARNING"}
    api = ManagedProcess("api", [sys.executable, "-m", "tickwire", "api"], log_dir / "api.log", env)
    await api.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        while True:
            try:
                await client.get("/health")
                return api, base_url
            except httpx.TransportError:
                if not api.running or time.monotonic() > deadline:
                    await api.stop()
                    raise RuntimeError(f"the API did not start:\n{api.tail()}") from None
                await asyncio.sleep(0.1)  # probe interval while the server starts


async def measure(redis: Redis, base_url: str, positions: int, requests: int, moving: float,
                  server: psutil.Process) -> tuple[list[float], float]:
    """Milliseconds per request after a warm-up, and the server's CPU milliseconds per request.

    The CPU figure does not depend on how busy the machine is, the latency does (on a shared box).
    """
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        url, params = "/api/v1/positions/pnl/realtime", {"account": ACCOUNT}
        for _ in range(20):  # warm-up: connections, script cache, allocator
            (await client.get(url, params=params)).raise_for_status()
        times = []
        cpu_ms = 0.0
        rng = random.Random(11)
        for _ in range(requests):
            if moving:
                await move_prices(redis, positions, rng, moving)  # untimed
            cpu_before = sum(server.cpu_times()[:2])
            started = time.perf_counter()
            response = await client.get(url, params=params)
            times.append((time.perf_counter() - started) * 1000)
            cpu_ms += (sum(server.cpu_times()[:2]) - cpu_before) * 1000
            response.raise_for_status()
        body = response.json()
        assert len(body["positions"]) == positions, len(body["positions"])
        return times, cpu_ms / requests


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--policy", choices=["mid", "side", "last"], default="mid")
    parser.add_argument("--flush", action="store_true", help="flush REDIS_URL's database first")
    parser.add_argument("--moving", type=float, default=1.0, help="fraction of prices moved between requests")
    args = parser.parse_args()
    async with AsyncExitStack() as stack:
        redis_url = os.environ.get("REDIS_URL")
        log_dir = Path(tempfile.mkdtemp(prefix="bench-api-"))
        if not redis_url:
            redis_url = (await stack.enter_async_context(EmbeddedRedis(log_dir))).url
        redis = Redis.from_url(redis_url)
        if args.flush:
            await redis.flushdb()
        await redis.delete(positions_key(ACCOUNT))
        await seed(redis, args.positions)
        api, base_url = await start_api(redis_url, args.policy, log_dir)
        try:
            times, cpu_ms = await measure(redis, base_url, args.positions, args.requests, args.moving,
                                          psutil.Process(api.pid))
        finally:
            await api.stop()
            await redis.aclose()
    times.sort()
    pct = {p: times[min(len(times) - 1, int(len(times) * p / 100))] for p in (50, 95, 99)}
    print(f"GET /api/v1/positions/pnl/realtime, {args.positions} positions, policy {args.policy}, "
          f"{args.requests} requests over HTTP to `tickwire api` on this host, "
          f"{args.moving:.0%} of the prices new before each request")
    print(f"  mean {statistics.fmean(times):.1f} ms  p50 {pct[50]:.1f} ms  p95 {pct[95]:.1f} ms  "
          f"p99 {pct[99]:.1f} ms  max {times[-1]:.1f} ms  (target < 50 ms)")
    print(f"  server CPU {cpu_ms:.1f} ms per request; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    asyncio.run(main())
