"""Chaos: the broker stops answering (SIGSTOP) under load, then comes back (SIGCONT).

A frozen broker accepts connections and answers nothing, unlike a dead one (test_chaos_broker_kill.py), so
clients wait on their timeouts instead of failing fast. Meanwhile the ingest and the API must report the
broker problem; afterwards both the ingest and the processor recover by themselves and the oracle holds.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from deploy.embedded import EmbeddedBroker
from schemas.topics import INGEST_STATUS_KEY, pnl_key, price_key
from tests.conftest import TEST_PARTITIONS
from tests.helpers import eventually
from tests.integration.api_support import api_client, api_settings
from tests.integration.test_chaos import pipeline
from tickwire.topic_admin import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


async def test_chaos_given_broker_frozen_under_load_ingest_and_api_report_it_and_everything_recovers(
    redis_url: str, redis: Redis, log_dir: Path, tmp_path: Path
) -> None:
    async with EmbeddedBroker(tmp_path / "kafka", log_dir / "frozen") as broker:
        await ensure_topics(broker.bootstrap, TEST_PARTITIONS)
        async with pipeline(broker.bootstrap, redis_url, log_dir) as p:
            async def priced() -> bool:
                return bool(await redis.hlen(pnl_key(p.account)) == 2 and await p.priced_after(redis, ""))

            await eventually(priced, 120, "prices and P&L before the outage", p.ingest, p.processor)
            assert broker.process.proc is not None
            pid = broker.process.proc.pid

            # Act: freeze the broker; the feed keeps sending.
            os.kill(pid, signal.SIGSTOP)
            try:
                async def ingest_reports_kafka() -> dict[str, object] | None:
                    raw = await redis.get(INGEST_STATUS_KEY)
                    status = orjson.loads(raw) if raw else {}
                    return status if not status.get("healthy", True) and "kafka" in status.get("detail", "") \
                        else None

                ingest_status = await eventually(ingest_reports_kafka, 60, "the ingest to report Kafka down",
                                                 p.ingest, p.processor)
                async with api_client(api_settings(redis_url, broker.bootstrap)) as client:
                    health = (await client.get("/health")).json()
                frozen_at = orjson.loads(await redis.get(price_key(p.symbols[0])))["timestamp"]
            finally:
                os.kill(pid, signal.SIGCONT)

            # Recovery: new prices flow again, by themselves, and every view converges.
            await eventually(lambda: p.priced_after(redis, frozen_at), 120, "prices after the broker is back",
                             p.ingest, p.processor)
            report = await p.converged(redis, timeout=120)
            alive = p.ingest.running and p.processor.running

    print(f"chaos broker freeze: ingest said {ingest_status['detail']!r}; /health {health['status']} "
          f"{health['problems']}; {report.summary()}")
    assert alive
    assert health["status"] == "degraded" and health["broker"]["ok"] is False
    assert any("broker" in problem for problem in health["problems"])
