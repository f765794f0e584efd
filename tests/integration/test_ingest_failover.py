"""One Alpaca connection per account: a hot standby takes over when the active ingest dies, and shutdown
closes the socket and flushes what is queued.

The failover test runs real ``tickwire ingest`` processes (kill -9 is a real death); the feed allows one
authenticated session per key, like Alpaca, and answers a second one with 406.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from deploy.embedded.process import ManagedProcess
from schemas.events import IngestStatus
from schemas.timestamps import format_ns, now_ns
from schemas.topics import FEED_GAPS, INGEST_LEASE_KEY, INGEST_STATUS_KEY, QUOTES_RAW
from tests.helpers import eventually, tickwire_env, unique_symbol
from tests.integration.test_ingest_harness import (
    DEADLINE,
    MakeFeed,
    dumps,
    quote,
    records_of,
    running_ingest,
    until,
)

pytestmark = pytest.mark.integration
LEASE_TTL_S = 1.5


def ingest_process(name: str, log_dir: Path, env: dict[str, str]) -> ManagedProcess:
    """``tickwire ingest`` as a deployment runs it."""
    return ManagedProcess(name, [sys.executable, "-m", "tickwire", "ingest"], log_dir / f"{name}.log", env)


async def active_status(redis: Redis, not_instance: str | None = None) -> IngestStatus | None:
    """The status an active, connected ingest wrote (optionally: another instance than ``not_instance``)."""
    raw = await redis.get(INGEST_STATUS_KEY)
    status = IngestStatus.model_validate_json(raw) if raw else None
    if status and status.role == "active" and status.connected and status.instance != not_instance:
        return status
    return None


async def test_ingest_given_active_killed_standby_takes_over_within_seconds_without_406(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path, make_feed: MakeFeed
) -> None:
    """Test the lease: a second ingest waits as standby (never connects, so never a 406); after kill -9 of
    the active it connects within about one lease TTL, announces a takeover gap and streams; SIGTERM then
    stops it cleanly within 10 s."""
    # Arrange
    symbol = unique_symbol("F")
    feed = await make_feed(rate_per_symbol=10)
    env = tickwire_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url, ALPACA_STREAM_URL=feed.url(),
        TICKWIRE_SYMBOLS=symbol, TICKWIRE_INGEST_LEASE_TTL_SECONDS=str(LEASE_TTL_S),
        TICKWIRE_RECONNECT_BASE_SECONDS="0.1", TICKWIRE_GAP_SETTLE_SECONDS="1",
    )
    processes = [ingest_process("ingest-1", tmp_path, env), ingest_process("ingest-2", tmp_path, env)]
    try:
        await asyncio.gather(*(p.start() for p in processes))  # both race for the lease
        leader = await eventually(lambda: active_status(redis), 60, "one ingest to stream", *processes)
        # The instance id names the process: host-pid-random.
        first, second = sorted(processes, key=lambda p: f"-{p.pid}-" not in leader.instance)
        await eventually(lambda: _logged(second, "standby: another ingest holds"), 60, "a standby", second)
        standby_connections = feed.connection_count

        # Act
        killed_at = time.monotonic()
        assert first.proc is not None
        first.proc.kill()
        successor = await eventually(lambda: active_status(redis, leader.instance), 30, "a takeover", second)
        takeover_s = time.monotonic() - killed_at
        await feed.wait_for_subscription("quotes", [symbol], timeout=DEADLINE)
        taken_ns = now_ns()
        gap = (await records_of(kafka_bootstrap, FEED_GAPS.name, symbol, 1))[0]
        fresh = await records_of(kafka_bootstrap, QUOTES_RAW.name, symbol, 1,
                                 where=lambda q: q["received_at"] > format_ns(taken_ns))
        lease_holder = await redis.get(INGEST_LEASE_KEY)
        stop_started = time.monotonic()
        assert second.proc is not None
        second.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(second.proc.wait(), 10)
        stop_s = time.monotonic() - stop_started
    finally:
        await asyncio.gather(*(p.stop() for p in processes))

    # Assert
    print(f"takeover after kill -9: {takeover_s:.2f}s (lease TTL {LEASE_TTL_S} s); SIGTERM exit in {stop_s:.2f}s")
    assert standby_connections == 1, "the standby must not open a second connection"
    assert feed.auth_rejections == 0, "no 406: only the lease holder ever connected"
    assert feed.connection_count == 2
    assert takeover_s < LEASE_TTL_S + 3.0
    assert lease_holder == successor.instance.encode()
    assert gap["reason"] == "takeover" and leader.instance in gap["detail"], dumps(gap)
    assert fresh
    assert code == 0 and stop_s < 10
    log = second.log_path.read_text()
    assert "ingest stopped" in log and "queue_left=0" in log, second.tail(20)
    assert await redis.get(INGEST_LEASE_KEY) is None, "a clean stop releases the lease for the next standby"


async def test_ingest_given_stop_during_a_burst_publishes_everything_it_received(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test shutdown in the middle of a burst: the socket closes, and every message the ingest had received
    (queued or in flight) reaches Kafka before it returns, well within 10 s."""
    # Arrange
    symbol = unique_symbol("Z")
    feed = await make_feed(rate_per_symbol=0)
    t0 = now_ns()
    burst = [quote(symbol, 10.0 + i / 100, t0 + i) for i in range(8_000)]  # fits the queue: no overflow
    async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol]) as ingest:
        await feed.wait_for_subscription("quotes", [symbol], timeout=DEADLINE)
        publisher = ingest.service.publisher

        # Act
        feed.inject(burst)
        await until(lambda: publisher.counters.received["q"] >= 2_000, "part of the burst received")
        queued_at_stop = publisher.depth
        stop_s = await ingest.shutdown()
        received = publisher.counters.received["q"]
    published = await records_of(kafka_bootstrap, QUOTES_RAW.name, symbol, received)

    # Assert
    print(f"stopped in {stop_s:.2f}s with {queued_at_stop} queued; {received} received, all published")
    assert stop_s < 10
    assert publisher.counters.overflow == 0 and publisher.depth == 0
    assert publisher.counters.published["q"] == received
    assert len(published) == received == len({q["t"] for q in published})
    assert feed.sessions == (), "the socket is closed"


async def _logged(process: ManagedProcess, text: str) -> bool:
    return process.log_path.exists() and text in process.log_path.read_text()


async def test_ingest_given_active_stops_cleanly_standby_takes_over_at_once_and_statuses_never_mix(
    kafka_bootstrap: str, redis_url: str, redis: Redis, make_feed: MakeFeed
) -> None:
    """Test a clean handover between two ingests on one account: the standby never connects and never
    overwrites the active's status; when the active stops (releasing the lease) it connects at once."""
    # Arrange
    symbol = unique_symbol("Y")
    feed = await make_feed(rate_per_symbol=5)
    async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol], instance="one",
                              ingest_lease_ttl_s=LEASE_TTL_S) as active:
        await until(lambda: active.status.connected, "the first to connect")
        async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol], instance="two",
                                  ingest_lease_ttl_s=LEASE_TTL_S) as standby:
            await until(lambda: standby.service.reporter.latest is not None and standby.status.role == "standby"
                        and standby.status.detail, "the second as standby")
            written_while_standby = await eventually(lambda: active_status(redis), DEADLINE, "the active's status")

            # Act
            stopped_at = time.monotonic()
            await active.shutdown()
            taken = await eventually(lambda: active_status(redis, "one"), DEADLINE, "the standby's status")
            handover_s = time.monotonic() - stopped_at

    # Assert
    print(f"clean handover in {handover_s:.2f}s")
    assert written_while_standby.instance == "one"
    assert taken.instance == "two" and handover_s < 3.0
    assert feed.connection_count == 2 and feed.auth_rejections == 0
