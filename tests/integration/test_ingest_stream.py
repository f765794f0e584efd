"""The ingest's connection to Alpaca under failure: backoff, refusals, drops, mute sockets, halts, bad frames.

Real alpaca-py against the local feed (its fault API scripts the failures), the session's broker and Redis.
Timing assertions use the feed's own connection counter and event-driven waits, never sleeps.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from alpaca_feed.server import AlpacaFeedServer
from schemas.timestamps import NS_PER_SECOND, format_ns, now_ns
from schemas.topics import FEED_GAPS, QUOTES_RAW, TRADES_RAW
from tests.helpers import unique_symbol
from tests.integration.test_ingest_harness import (
    DEADLINE,
    MakeFeed,
    backfilled,
    connected,
    dumps,
    quote,
    records_of,
    running_ingest,
    until,
)

pytestmark = pytest.mark.integration


async def attempt_times(feed: AlpacaFeedServer, upto: int, timeout: float = DEADLINE) -> list[float]:
    """The monotonic time at which the feed saw each connection attempt, until attempt ``upto``."""
    times = []
    for count in range(feed.connection_count + 1, upto + 1):
        await feed.wait_for_connections(count, timeout=timeout)
        times.append(time.monotonic())
    return times


def intervals(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in itertools.pairwise(times)]


def assert_delays(measured: list[float], nominal: list[float], slack: float = 0.35) -> None:
    """Each delay at least ~its nominal value (never a tight loop) and not much more (the policy, not luck)."""
    assert len(measured) == len(nominal), (measured, nominal)
    for got, want in zip(measured, nominal, strict=True):
        assert want * 0.9 <= got <= want + slack, f"delays {measured}, policy says {nominal}"


async def test_ingest_given_refused_handshakes_backs_off_by_policy_and_resets_after_success(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test that HTTP 429 at the upgrade is retried at base, 2x base ... the cap (no storm), that the
    ingest reports unhealthy after max_reconnect_attempts but keeps trying, and that a success resets."""
    # Arrange
    symbol = unique_symbol("B")
    feed = await make_feed(rate_per_symbol=0)
    feed.faults.reject_handshakes(status=429, seconds=120)
    async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol], reconnect_base_s=0.2,
                              reconnect_max_s=0.8, max_reconnect_attempts=3) as ingest:
        # Act
        refused = await attempt_times(feed, 5)
        status_exhausted = await until(lambda: (s := ingest.status).reconnect_attempts >= 4 and s, "4 failures")
        feed.faults.clear()
        refused += await attempt_times(feed, 6)
        await connected(ingest)
        await feed.wait_for_subscription("quotes", [symbol], timeout=DEADLINE)
        status_connected = ingest.status
        dropped_at = time.monotonic()
        await feed.faults.drop()
        after_drop = await attempt_times(feed, 7)

    # Assert
    print(f"429 retry delays {intervals(refused)}; after a success a drop waits {after_drop[0] - dropped_at:.3f}s")
    assert feed.handshake_rejections == 5
    assert_delays(intervals(refused), [0.2, 0.4, 0.8, 0.8, 0.8])
    assert not status_exhausted.healthy and status_exhausted.max_reconnect_attempts_exceeded, dumps(status_exhausted)
    assert "HTTP 429" in status_exhausted.detail and status_exhausted.role == "active"
    assert status_connected.healthy and status_connected.reconnect_attempts == 0
    assert not status_connected.max_reconnect_attempts_exceeded
    assert_delays([after_drop[0] - dropped_at], [0.2])  # reset: back at base, not the cap


async def test_ingest_given_auth_refusals_retries_with_backoff_and_reports_each_clearly(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test 406 (slot taken), 402 (credentials) and 409 (plan) at auth: backoff between attempts, a one-line
    reason naming the fix, unhealthy for 402/409, and streaming once the server accepts again."""
    # Arrange
    symbol = unique_symbol("A")
    feed = await make_feed(rate_per_symbol=0)
    feed.faults.reject_auth(406, count=3)
    async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol], reconnect_base_s=0.2,
                              reconnect_max_s=1.6) as ingest:
        # Act
        attempts_406 = await attempt_times(feed, 4)
        await connected(ingest)
        reason_406 = ingest.service.stream.last_failure  # type: ignore[union-attr]
        reports = {}
        for code in (402, 409):
            feed.faults.reject_auth(code, count=2)
            await feed.faults.drop()
            reports[code] = await until(lambda: (s := ingest.status).detail and not s.healthy and s,
                                        f"unhealthy after {code}")
            await connected(ingest)
        t0 = now_ns()
        feed.inject([quote(symbol, 10.0, t0)])
        published = await records_of(kafka_bootstrap, QUOTES_RAW.name, symbol, 1)

    # Assert
    assert feed.auth_rejections == 7
    assert_delays(intervals(attempts_406), [0.2, 0.4, 0.8])
    assert reason_406 is not None and reason_406.code == 406 and "one per account" in reason_406.describe()
    assert "(402)" in reports[402].detail and "ALPACA_API_KEY" in reports[402].detail, reports[402].detail
    assert "(409)" in reports[409].detail and "ALPACA_FEED=iex" in reports[409].detail, reports[409].detail
    assert published[0]["t"] == format_ns(t0)


async def test_ingest_given_dropped_socket_resubscribes_and_publishes_a_gap_event(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test an abrupt drop (no close frame): the ingest reconnects, subscribes its symbols again, and
    publishes one feed.gaps event per symbol with the exchange times of the last message before and the
    first after."""
    # Arrange
    a, b = unique_symbol("D"), unique_symbol("D")
    feed = await make_feed(rate_per_symbol=0)
    t0 = now_ns()
    async with running_ingest(kafka_bootstrap, redis_url, feed, [a, b]) as ingest:
        await feed.wait_for_subscription("quotes", [a, b], timeout=DEADLINE)
        feed.inject([quote(a, 10.0, t0), quote(b, 20.0, t0 + 1)])
        await records_of(kafka_bootstrap, QUOTES_RAW.name, b, 1)

        # Act
        await feed.faults.drop(close_frame=False)
        await feed.wait_for_connections(2, timeout=DEADLINE)
        await feed.wait_for_subscription("quotes", [a, b], timeout=DEADLINE)
        await feed.wait_for_subscription("trades", [a, b], timeout=DEADLINE)
        feed.inject([quote(a, 10.5, t0 + NS_PER_SECOND), quote(b, 20.5, t0 + NS_PER_SECOND + 1)])
        after = await records_of(kafka_bootstrap, QUOTES_RAW.name, a, 2)
        gaps = {g["symbol"]: g for s in (a, b) for g in await records_of(kafka_bootstrap, FEED_GAPS.name, s, 1)}
        status = ingest.status

    # Assert
    assert [q["bp"] for q in after] == [10.0, 10.5]
    assert set(gaps) == {a, b}
    assert gaps[a]["gap_id"] == gaps[b]["gap_id"] and gaps[a]["symbols"] == sorted([a, b])
    assert gaps[a]["reason"] == "reconnect"
    assert (gaps[a]["last_before"], gaps[a]["first_after"]) == (format_ns(t0), format_ns(t0 + NS_PER_SECOND))
    assert (gaps[b]["last_before"], gaps[b]["first_after"]) == (format_ns(t0 + 1), format_ns(t0 + NS_PER_SECOND + 1))
    assert status.reconnects_total == 1 and status.gaps == 1 and status.connected


async def test_ingest_given_mute_socket_reconnects_and_reports_a_stall(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test a socket that stays open but carries no data (alpaca-py #740): detected after mute_after,
    reconnected, and announced as a stall gap; data flows again afterwards."""
    # Arrange
    a, b = unique_symbol("M"), unique_symbol("M")
    feed = await make_feed(rate_per_symbol=20)
    async with running_ingest(kafka_bootstrap, redis_url, feed, [a, b], mute_after_s=1.0,
                              alpaca_data_url=feed.http_url()):
        await records_of(kafka_bootstrap, QUOTES_RAW.name, a, 1)
        assert feed.connection_count == 1

        # Act
        muted_at = time.monotonic()
        feed.faults.mute()
        await feed.wait_for_connections(2, timeout=DEADLINE)
        detected_s = time.monotonic() - muted_at
        feed.faults.unmute()
        unmuted_ns = now_ns()
        fresh = await records_of(kafka_bootstrap, QUOTES_RAW.name, b, 1,
                                 where=lambda q: q["received_at"] > format_ns(unmuted_ns))
        gaps = await records_of(kafka_bootstrap, FEED_GAPS.name, a, 1)
        repaired = await backfilled(kafka_bootstrap, TRADES_RAW.name, [a, b])

    # Assert
    print(f"mute socket reconnected {detected_s:.2f}s after the data stopped (mute_after 1.0s)")
    assert 1.0 <= detected_s < 4.0, detected_s
    assert gaps[0]["reason"] == "stall" and "mute socket" in gaps[0]["detail"], dumps(gaps)
    assert gaps[0]["last_before"] is not None and gaps[0]["first_after"] is not None
    assert fresh
    assert {t["gap_id"] for t in repaired} == {gaps[0]["gap_id"]}, "trades withheld while mute come from REST"


async def test_ingest_given_quiet_symbol_or_halts_does_not_reconnect_but_mute_socket_does(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test the staleness rules end to end: one silent symbol while another flows is reported quiet
    (no reconnect); silence while every symbol is halted is no reason either; after a resumption the
    same silence is a mute socket and is reconnected."""
    # Arrange
    busy, idle = unique_symbol("Q"), unique_symbol("Q")
    feed = await make_feed(rate_per_symbol=0)
    async with running_ingest(kafka_bootstrap, redis_url, feed, [busy, idle], mute_after_s=1.0,
                              quiet_after_s=0.4) as ingest:
        await feed.wait_for_subscription("statuses", [busy, idle], timeout=DEADLINE)
        router = ingest.service.router

        async def market(seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                feed.inject([quote(busy, 10.0, now_ns())])
                await asyncio.sleep(0.1)  # the pace of a thin market, not synchronisation

        # Act
        pace = asyncio.create_task(market(2.5))
        quiet = await until(lambda: ingest.status.quiet_symbols, "a quiet symbol")
        await pace
        after_quiet = feed.connection_count
        feed.faults.halt(busy)
        feed.faults.halt(idle)
        halted = await until(lambda: ingest.status.halted_symbols == sorted([busy, idle]) and ingest.status,
                             "both halted")
        silent_from = router.last_any_ns
        await until(lambda: now_ns() - silent_from > 2.5 * NS_PER_SECOND, "2.5 s of halted silence")
        after_halts, during_halts = feed.connection_count, ingest.status
        feed.faults.resume(busy)
        await feed.wait_for_connections(2, timeout=DEADLINE)

    # Assert
    assert quiet == [idle]
    assert (after_quiet, after_halts) == (1, 1)
    assert halted.connected and during_halts.connected and during_halts.quiet_symbols == []


async def test_ingest_given_malformed_frames_counts_them_and_keeps_the_socket(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test undecodable frames and wrong-typed fields: counted, logged, no reconnect, data goes on."""
    # Arrange
    symbol = unique_symbol("X")
    feed = await make_feed(rate_per_symbol=0)
    async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol]) as ingest:
        await feed.wait_for_subscription("quotes", [symbol], timeout=DEADLINE)

        # Act
        for kind in ("bad_msgpack", "text_in_msgpack_session", "string_timestamp", "missing_field"):
            feed.faults.send_malformed(kind, symbol=symbol)
        t0 = now_ns()
        feed.inject([quote(symbol, 12.0, t0)])
        published = await records_of(kafka_bootstrap, QUOTES_RAW.name, symbol, 3)
        status = ingest.status

    # Assert
    assert status.malformed == 2 and feed.connection_count == 1 and status.connected
    assert published[-1]["t"] == format_ns(t0)
    assert "bp" not in published[1], "a quote missing a field is passed on for the processor to dead-letter"


async def test_ingest_given_slow_client_407_reconnects_and_reports_the_gap(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test Alpaca's slow-client disconnect (407): logged as such, reconnected, announced as a gap."""
    # Arrange
    symbol = unique_symbol("W")
    feed = await make_feed(rate_per_symbol=0)
    t0 = now_ns()
    async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol]) as ingest:
        await feed.wait_for_subscription("quotes", [symbol], timeout=DEADLINE)
        feed.inject([quote(symbol, 10.0, t0)])
        await records_of(kafka_bootstrap, QUOTES_RAW.name, symbol, 1)

        # Act
        feed.faults.slow_client(max_pending_bytes=1)
        feed.inject([quote(symbol, 10.1, t0 + 1)])
        await feed.wait_for_sessions(0, timeout=DEADLINE)
        feed.faults.clear()
        await feed.wait_for_subscription("quotes", [symbol], timeout=DEADLINE)
        feed.inject([quote(symbol, 10.2, t0 + 2)])
        [gap] = await records_of(kafka_bootstrap, FEED_GAPS.name, symbol, 1)
        errors = ingest.service.router.errors

    # Assert
    assert errors[407] == 1
    assert (gap["reason"], gap["last_before"], gap["first_after"]) == ("reconnect", format_ns(t0), format_ns(t0 + 2))
