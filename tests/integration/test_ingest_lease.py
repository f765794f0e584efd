"""The lease under a Redis outage: the active ingest streams on, and holds the lease again when Redis returns.

A Redis server of the test's own is killed (SIGKILL, its data gone) under a streaming ingest and started
again empty, as a Redis crash and restart looks to the ingest.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from deploy.embedded.redis_server import redis_server_binary
from schemas.timestamps import NS_PER_SECOND, format_ns, now_ns
from schemas.topics import INGEST_LEASE_KEY, QUOTES_RAW
from tests.helpers import eventually, unique_symbol
from tests.integration.test_ingest_harness import MakeFeed, connected, dumps, records_of, running_ingest, until

pytestmark = pytest.mark.integration
OUTAGE_S = 3  # three lease TTLs of the harness (1 s): a lease that ended the stream would have done so


async def test_ingest_given_redis_down_while_streaming_streams_on_and_takes_the_lease_back(
    kafka_bootstrap: str, log_dir: Path, make_feed: MakeFeed
) -> None:
    """Test that losing Redis costs the active ingest nothing: the stream stays up and keeps publishing for
    several lease TTLs, and when Redis comes back empty the ingest holds the lease again."""
    # Arrange
    port = free_port()
    argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    url = f"redis://127.0.0.1:{port}/0"
    server = ManagedProcess("redis-lease", argv, log_dir / f"redis-lease-{port}.log")
    await server.start()
    probe = Redis.from_url(url, socket_connect_timeout=1)

    async def up() -> bool:
        try:
            return bool(await probe.ping())
        except Exception:
            return False

    async def holder() -> bytes | None:
        try:
            return await probe.get(INGEST_LEASE_KEY)
        except Exception:
            return None

    symbol = unique_symbol("L")
    feed = await make_feed(rate_per_symbol=20)
    try:
        await eventually(up, 15, "redis-server", server)
        async with running_ingest(kafka_bootstrap, url, feed, [symbol], instance="lease-holder") as ingest:
            await connected(ingest)
            held_before = await eventually(holder, 15, "the lease taken")

            # Act: Redis dies with its data; the stream must not notice.
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGKILL)
            await asyncio.wait_for(server.proc.wait(), 15)
            down_ns = now_ns()
            late = format_ns(down_ns + OUTAGE_S * NS_PER_SECOND)
            streamed = await records_of(kafka_bootstrap, QUOTES_RAW.name, symbol, 1,
                                        where=lambda q: q["received_at"] > late)
            during = await until(lambda: (s := ingest.status).connected and s, "the stream still up")
            server = ManagedProcess("redis-lease", argv, log_dir / f"redis-lease-{port}-2.log")
            await server.start()
            await eventually(up, 15, "redis-server back", server)
            held_after = await eventually(holder, 15, "the lease taken back")
            after = ingest.status
    finally:
        await probe.aclose()
        await server.stop()

    # Assert
    assert held_before == held_after == b"lease-holder"
    assert streamed, "quotes received after several lease TTLs without Redis were published"
    assert during.role == "active" and during.connected, dumps(during.model_dump())
    assert after.role == "active" and after.connected, dumps(after.model_dump())
    assert feed.connection_count == 1, "the outage never touched the Alpaca connection"
