"""Kafka going away under a live stream: a bounded queue, counted overflow, recovery, and the gap repaired.

A dedicated embedded broker is killed (SIGKILL) under the stream and, once the ingest's queue has overflowed,
started again on its data and ports, as a broker crash and restart looks to the ingest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.embedded import EmbeddedBroker
from schemas.timestamps import format_ns, now_ns
from schemas.topics import FEED_GAPS, QUOTES_RAW, TRADES_RAW
from tests.helpers import unique_symbol
from tests.integration.test_ingest_harness import (
    MakeFeed,
    backfilled,
    dumps,
    records_of,
    running_ingest,
    until,
)
from tickwire.topic_admin import ensure_topics

pytestmark = pytest.mark.integration
QUEUE_SIZE = 100


async def test_ingest_given_kafka_outage_bounds_the_queue_counts_overflow_and_recovers(
    tmp_path: Path, redis_url: str, make_feed: MakeFeed
) -> None:
    """Test that while Kafka is down the queue stays at its bound, drops are counted and reported (status
    unhealthy, overflow > 0), and that when Kafka returns the queued messages, new live messages and an
    overflow gap event per symbol reach it without a restart of the ingest."""
    # Arrange
    a, b = unique_symbol("K"), unique_symbol("K")
    broker = await EmbeddedBroker(tmp_path / "kafka").start()
    await ensure_topics(broker.bootstrap, 2)
    feed = await make_feed(rate_per_symbol=40)
    try:
        async with running_ingest(broker.bootstrap, redis_url, feed, [a, b], ingest_queue_size=QUEUE_SIZE,
                                  alpaca_data_url=feed.http_url()) as ingest:
            await records_of(broker.bootstrap, QUOTES_RAW.name, a, 1)

            # Act
            await broker.kill()
            outage = await until(lambda: (s := ingest.status).overflow > 100 and not s.healthy and s,
                                 "overflow while kafka is down")
            await broker.start()
            back_ns = now_ns()
            queued = await records_of(broker.bootstrap, QUOTES_RAW.name, a, 1,
                                      where=lambda q: q["received_at"] < format_ns(back_ns))
            live = await records_of(broker.bootstrap, QUOTES_RAW.name, b, 1,
                                    where=lambda q: q["received_at"] > format_ns(back_ns))
            gaps = {s: await records_of(broker.bootstrap, FEED_GAPS.name, s, 1) for s in (a, b)}
            repaired = await backfilled(broker.bootstrap, TRADES_RAW.name, [a, b])
            recovered = await until(lambda: (s := ingest.status).healthy and s, "healthy again")
            all_gap_ids = {g["gap_id"] for s in (a, b)
                           for g in await records_of(broker.bootstrap, FEED_GAPS.name, s, 1)}
    finally:
        await broker.stop()

    # Assert
    assert outage.queue_depth <= QUEUE_SIZE and outage.connected, dumps(outage)
    assert "kafka unreachable" in outage.detail and "dropping" in outage.detail, outage.detail
    assert queued and live, "what was queued during the outage and what arrived after it both got through"
    for symbol in (a, b):
        [gap] = gaps[symbol][:1]
        assert gap["reason"] == "overflow" and gap["last_before"] and gap["first_after"], dumps(gap)
        assert gap["last_before"] < gap["first_after"]
    # A loaded box may overflow again while the backlog drains: every repair belongs to some overflow gap.
    assert {t["gap_id"] for t in repaired} <= all_gap_ids, dumps(repaired)
    assert recovered.overflow >= outage.overflow and recovered.connected
