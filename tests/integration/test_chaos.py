"""Chaos under steady load from the local feed, checked by the consistency oracle (loopback only, bounded).

Each test breaks one real component mid-stream: SIGKILL of the processor worker (then a restart), and a
restart of Redis. Afterwards the symbols are halted (no more quotes), and the oracle must find Redis, the
latest-price table and the API consistent with the raw topics; no price.updated may ever go back in time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from alpaca_feed.server import AlpacaFeedServer
from consumers.consistency import CheckReport, check, read_topic
from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from deploy.embedded.redis_server import redis_server_binary
from schemas.topics import (
    ACCOUNTS_KEY,
    PRICE_CHANNEL_PATTERN,
    QUOTES_RAW,
    close_key,
    pnl_key,
    positions_key,
    price_key,
)
from tests.helpers import eventually, processor_process, tickwire_env, unique_symbol
from tests.integration.api_support import api_client, api_settings
from tests.integration.test_consistency import publish_positions

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RATE = 20  # quotes/s per symbol: steady, moderate load on a shared machine


@dataclass
class Pipeline:
    """A running feed -> ingest -> processor on one Redis database, and what pub/sub showed of it."""

    bootstrap: str
    redis_url: str
    symbols: list[str]
    account: str
    app_id: str
    env: dict[str, str]
    feed: AlpacaFeedServer
    ingest: ManagedProcess
    processor: ManagedProcess
    log_dir: Path
    seen: dict[str, list[str]] = field(default_factory=dict)

    def new_processor(self) -> ManagedProcess:
        self.processor = processor_process(self.log_dir, self.env)
        return self.processor

    def new_ingest(self) -> ManagedProcess:
        self.ingest = ingest_process(self.log_dir, self.app_id, self.env)
        return self.ingest

    async def quotes(self) -> int:
        return len(await read_topic(self.bootstrap, QUOTES_RAW.name, {s.encode() for s in self.symbols}))

    async def priced_after(self, redis: Redis, stamp: str) -> bool:
        values = await redis.mget([price_key(s) for s in self.symbols])
        return all(v is not None and orjson.loads(v)["timestamp"] > stamp for v in values)

    async def converged(self, redis: Redis, timeout: float = 90) -> CheckReport:
        """Halt every symbol, then wait for the oracle to find every view consistent."""
        for symbol in self.symbols:
            self.feed.faults.halt(symbol)
        report: CheckReport | None = None
        async with api_client(api_settings(self.redis_url, self.bootstrap)) as client:
            async def consistent() -> CheckReport | None:
                nonlocal report
                report = await check(self.bootstrap, redis, set(self.symbols), 60.0, self.app_id, client)
                return report if report.ok else None

            try:
                return await eventually(consistent, timeout, "the oracle to hold", self.ingest, self.processor)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {[str(m) for m in report.mismatches] if report else None}") from None


def ingest_process(log_dir: Path, app_id: str, env: dict[str, str]) -> ManagedProcess:
    """The ingest of a chaos pipeline (not started)."""
    return ManagedProcess("ingest", [sys.executable, "-m", "tickwire", "ingest"],
                          log_dir / f"chaos-ingest-{app_id}-{uuid.uuid4().hex[:4]}.log", env)


@asynccontextmanager
async def pipeline(bootstrap: str, redis_url: str, log_dir: Path, rate: int = RATE, symbols_n: int = 3,
                   **env_overrides: str) -> AsyncIterator[Pipeline]:
    """Feed (``rate`` quotes/s for each of ``symbols_n`` symbols) -> ingest -> processor, with positions in two
    symbols; ``env_overrides`` go to the ingest and the processor."""
    symbols = [unique_symbol("C") for _ in range(symbols_n)]
    app_id = f"chaos-{uuid.uuid4().hex[:8]}"
    feed = AlpacaFeedServer(rate_per_symbol=rate, seed=11)
    await feed.start()
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=bootstrap, REDIS_URL=redis_url, ALPACA_STREAM_URL=feed.url(),
                       TICKWIRE_SYMBOLS=",".join(symbols), TICKWIRE_PROCESSOR_APP_ID=app_id,
                       TICKWIRE_RECONNECT_BASE_SECONDS="0.2", TICKWIRE_RECONNECT_MAX_SECONDS="1", **env_overrides)
    ingest = ingest_process(log_dir, app_id, env)
    p = Pipeline(bootstrap, redis_url, symbols, f"acct-{uuid.uuid4().hex[:6]}", app_id, env, feed, ingest,
                 processor_process(log_dir, env), log_dir)
    watcher = Redis.from_url(redis_url)
    pubsub = watcher.pubsub()
    await pubsub.psubscribe(PRICE_CHANNEL_PATTERN)

    async def watch() -> None:  # every price.updated, in order, across Redis restarts
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is not None:
                    update = orjson.loads(message["data"])
                    p.seen.setdefault(update["symbol"], []).append(update["timestamp"])
            except (ConnectionError, OSError, Exception):  # Redis is being restarted: resubscribe
                await asyncio.sleep(0.2)  # retry pace while Redis is down
                try:
                    await pubsub.psubscribe(PRICE_CHANNEL_PATTERN)
                except Exception:
                    pass

    watching = asyncio.create_task(watch())
    try:
        await ingest.start()
        await p.processor.start()
        await feed.wait_for_subscription("quotes", symbols, timeout=90)
        await publish_positions(bootstrap, p.account, {symbols[0]: ("100", "10.00"), symbols[1]: ("-35", "20.5")})
        yield p
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await pubsub.aclose()
        await watcher.aclose()
        await p.processor.stop(timeout=15)
        await p.ingest.stop(timeout=15)
        await feed.stop()


def assert_never_back_in_time(p: Pipeline) -> int:
    for symbol in p.symbols:
        stamps = p.seen.get(symbol, [])
        assert stamps, f"no price.updated for {symbol}"
        assert stamps == sorted(stamps), f"{symbol}'s price moved back in time"
    return sum(len(v) for v in p.seen.values())


async def test_chaos_given_processor_sigkilled_mid_stream_restarted_worker_restores_every_view(
    kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path
) -> None:
    """Test SIGKILL of the only worker under load: a restarted one resumes, and the oracle holds."""
    async with pipeline(kafka_bootstrap, redis_url, log_dir) as p:
        async def priced() -> bool:
            return bool(await redis.hlen(pnl_key(p.account)) == 2 and await p.priced_after(redis, ""))

        await eventually(priced, 120, "prices and P&L before the kill", p.ingest, p.processor)

        # Act: SIGKILL (no flush, no commit, no goodbye), keep the feed running, start a new worker.
        assert p.processor.proc is not None
        os.kill(p.processor.proc.pid, signal.SIGKILL)
        await asyncio.wait_for(p.processor.proc.wait(), 15)
        killed_at = orjson.loads(await redis.get(price_key(p.symbols[0])))["timestamp"]
        await p.new_processor().start()
        await eventually(lambda: p.priced_after(redis, killed_at), 120, "prices from the restarted worker",
                         p.ingest, p.processor)
        report = await p.converged(redis)

    updates = assert_never_back_in_time(p)
    print(f"chaos sigkill: {report.summary()}, price.updated seen {updates}")
    assert report.expected.quotes_valid > 0 and report.expected.positions_unpriced == 0


async def test_chaos_given_redis_restarted_mid_stream_projection_is_rebuilt_and_nothing_crashed(
    kafka_bootstrap: str, log_dir: Path
) -> None:
    """Test a Redis restart (all data lost) under load: prices and P&L reappear within seconds of its return,
    no component exits, and the oracle holds."""
    port = free_port()
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    url = f"redis://127.0.0.1:{port}/0"
    server = ManagedProcess("redis-chaos", argv, log_dir / f"redis-chaos-{port}.log")
    await server.start()
    redis = Redis.from_url(url, socket_connect_timeout=1)

    async def up() -> bool:
        try:
            return bool(await redis.ping())
        except Exception:
            return False

    try:
        await eventually(up, 15, "redis-server", server)
        async with pipeline(kafka_bootstrap, url, log_dir) as p:
            async def priced() -> bool:
                return bool(await redis.hlen(pnl_key(p.account)) == 2 and await p.priced_after(redis, ""))

            await eventually(priced, 120, "prices and P&L before the restart", p.ingest, p.processor)
            closed = await eventually(lambda: _closes(redis, p.symbols), 60, "daily closes before the restart",
                                      p.ingest, p.processor)

            # Act: kill Redis (its data is gone), let quotes arrive while it is down, bring it back empty.
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGKILL)
            await asyncio.wait_for(server.proc.wait(), 15)
            before = await p.quotes()
            await eventually(lambda: _more(p, before + RATE), 60, "quotes while Redis is down", p.ingest, p.processor)
            server = ManagedProcess("redis-chaos", argv, log_dir / f"redis-chaos-{port}-2.log")
            await server.start()
            await eventually(up, 15, "redis-server back", server)
            back = time.monotonic()
            await eventually(priced, 60, "prices and P&L projected again", p.ingest, p.processor)
            rebuilt_s = time.monotonic() - back
            report = await p.converged(redis)
            alive = p.ingest.running and p.processor.running
            # What changes rarely is re-asserted by the P&L stage, not only rewritten on the next change.
            await eventually(lambda: _rebuilt_accounts(redis, p.account), 30, "accounts and positions rebuilt",
                             p.ingest, p.processor)
            await eventually(lambda: _all_back(_closes(redis, p.symbols), closed), 30, "daily closes rebuilt",
                             p.ingest, p.processor)
    finally:
        await redis.aclose()
        await server.stop()

    print(f"chaos redis restart: rebuilt in {rebuilt_s:.1f}s; {report.summary()}")
    assert alive and rebuilt_s < 30
    assert_never_back_in_time(p)


async def _rebuilt_accounts(redis: Redis, account: str) -> bool:
    return bool(await redis.sismember(ACCOUNTS_KEY, account)) and await redis.hlen(positions_key(account)) == 2


async def _closes(redis: Redis, symbols: list[str]) -> list[str]:
    """The symbols whose previous close (close:{SYMBOL}, the P&L fallback) Redis holds."""
    return [s for s in symbols if await redis.exists(close_key(s))]


async def _all_back(values: Awaitable[list[str]], expected: list[str]) -> bool:
    """Every one of ``expected`` is among ``values`` (a close that arrived after they were taken may be too)."""
    return set(expected) <= set(await values)


async def _more(p: Pipeline, count: int) -> bool:
    return await p.quotes() >= count
