"""Chaos: the broker is SIGKILLed under load and started again on the same data directory.

Nothing is flushed or checkpointed; the broker recovers its log on start. The ingest, both stages and the API
must come back by themselves: prices resume within 10 s of the broker answering again, the API's health says
the broker is back, the ingest overflowed nothing (it buffered while the broker was gone), and the oracle finds
Redis, the latest-price table and the API consistent with every quote on ``quotes.raw``.
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from consumers.consistency import read_topic
from deploy.embedded import EmbeddedBroker
from schemas.events import GapReason
from schemas.topics import FEED_GAPS, pnl_key, price_key
from tests.conftest import TEST_PARTITIONS
from tests.helpers import eventually
from tests.integration.api_support import api_client, api_settings
from tests.integration.test_chaos import assert_never_back_in_time, pipeline
from tickwire.topic_admin import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RESUME_WITHIN_S = 10.0


async def test_chaos_given_broker_sigkilled_and_restarted_on_its_data_everything_recovers_and_nothing_is_lost(
    redis_url: str, redis: Redis, log_dir: Path, tmp_path: Path
) -> None:
    broker = EmbeddedBroker(tmp_path / "kafka", log_dir / "killed-broker")
    await broker.start()
    try:
        await ensure_topics(broker.bootstrap, TEST_PARTITIONS)
        async with pipeline(broker.bootstrap, redis_url, log_dir) as p, \
                api_client(api_settings(redis_url, broker.bootstrap,
                                        TICKWIRE_PROCESSOR_APP_ID=p.app_id)) as api:
            async def priced() -> bool:
                return bool(await redis.hlen(pnl_key(p.account)) == 2 and await p.priced_after(redis, ""))

            await eventually(priced, 120, "prices and P&L before the kill", p.ingest, p.processor)

            # Act: SIGKILL the broker while quotes flow; start it again on the same data and ports.
            await broker.kill()
            killed_at = orjson.loads(await redis.get(price_key(p.symbols[0])))["timestamp"]
            down = (await api.get("/health")).json()
            await broker.start()
            back = time.monotonic()
            await eventually(lambda: p.priced_after(redis, killed_at), 60, "prices after the broker restart",
                             p.ingest, p.processor)
            resumed_s = time.monotonic() - back

            async def broker_healthy() -> dict[str, object] | None:
                health = (await api.get("/health")).json()
                return health if health["broker"]["ok"] else None

            up = await eventually(broker_healthy, 30, "the API to see the broker again")
            report = await p.converged(redis, timeout=120)
            gaps = [orjson.loads(v) for _, v in await read_topic(broker.bootstrap, FEED_GAPS.name,
                                                                  {s.encode() for s in p.symbols}) if v]
            alive = p.ingest.running and p.processor.running
    finally:
        await broker.stop()

    print(f"chaos broker kill: prices resumed {resumed_s:.1f}s after the broker answered; {report.summary()}")
    assert alive
    assert resumed_s < RESUME_WITHIN_S
    assert down["broker"]["ok"] is False and up["status"] in ("healthy", "degraded")
    assert not [g for g in gaps if g["reason"] == GapReason.OVERFLOW], gaps
    assert report.expected.quotes_valid > 0 and report.expected.positions_unpriced == 0
    assert_never_back_in_time(p)
