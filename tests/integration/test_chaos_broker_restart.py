"""Chaos: the embedded broker restarts under load and comes back empty (it keeps everything in memory).

Every topic, committed offset and consumer group is gone. The ingest and the processor must not wedge: they
recreate the topics, start reading the new (empty) ones from their beginning, announce the lost window as a
``broker_restart`` gap per symbol, and prices flow again by themselves. Positions live upstream: the position
service publishes them again (as it would on Redpanda after a topic was recreated), and P&L follows.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from consumers.consistency import read_topic
from deploy.embedded import EmbeddedBroker
from schemas.events import GapReason
from schemas.topics import FEED_GAPS, pnl_key, price_key, topics_marker
from tests.conftest import TEST_PARTITIONS
from tests.helpers import eventually
from tests.integration.test_chaos import pipeline
from tests.integration.test_consistency import publish_positions
from tickwire.topic_admin import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def test_chaos_given_embedded_broker_restarted_empty_pipeline_recreates_topics_and_recovers(
    redis_url: str, redis: Redis, log_dir: Path
) -> None:
    first = EmbeddedBroker(log_dir / "before-restart")
    await first.start()
    second: EmbeddedBroker | None = None
    try:
        await ensure_topics(first.bootstrap, TEST_PARTITIONS)
        async with pipeline(first.bootstrap, redis_url, log_dir) as p:
            async def priced() -> bool:
                return bool(await redis.hlen(pnl_key(p.account)) == 2 and await p.priced_after(redis, ""))

            await eventually(priced, 120, "prices and P&L before the restart", p.ingest, p.processor)

            # Act: the broker dies and a new, empty one takes its address; nobody recreates topics for them.
            await first.process.stop(timeout=0)
            restarted_at = orjson.loads(await redis.get(price_key(p.symbols[0])))["timestamp"]
            second = EmbeddedBroker(log_dir / "after-restart", port=first.port)
            await second.start()

            # Recovery: new prices reach Redis by themselves; each symbol's lost window is announced.
            await eventually(lambda: p.priced_after(redis, restarted_at), 120, "prices after the broker restart",
                             p.ingest, p.processor)

            async def gaps_announced() -> list[dict[str, object]] | None:
                try:
                    records = await read_topic(second.bootstrap, FEED_GAPS.name, {s.encode() for s in p.symbols})
                except ValueError:  # not recreated yet
                    return None
                gaps = [orjson.loads(value) for _, value in records if value]
                restart_gaps = {g["symbol"] for g in gaps if g["reason"] == GapReason.BROKER_RESTART}
                return gaps if restart_gaps == set(p.symbols) else None

            gaps = await eventually(gaps_announced, 60, "a broker_restart gap per symbol", p.ingest, p.processor)
            marker = topics_marker(p.app_id).name
            await eventually(lambda: _has_topic(second.bootstrap, marker), 30, "the processor's topics recreated",
                             p.ingest, p.processor)

            # The position service republishes to the new topic; P&L is revalued at the new prices.
            await publish_positions(second.bootstrap, p.account,
                                    {p.symbols[0]: ("100", "10.00"), p.symbols[1]: ("-35", "20.5")})
            report = await p.converged(redis, timeout=120)
            alive = p.ingest.running and p.processor.running
    finally:
        if second is not None:
            await second.stop()
        await first.stop()

    print(f"chaos broker restart: {len(gaps)} gap records; {report.summary()}")
    assert alive
    assert report.expected.quotes_valid > 0 and report.expected.positions_unpriced == 0


async def _has_topic(bootstrap: str, name: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return name in await admin.list_topics()
    finally:
        await admin.close()
