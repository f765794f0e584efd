"""/health tells the truth about prices: a processor that stops while quotes arrive makes it unhealthy within 30 s."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from schemas.timestamps import now_ns
from schemas.topics import INGEST_STATUS_KEY, QUOTES_RAW
from tests.helpers import eventually, processor_process, tickwire_env, unique_symbol
from tests.integration.api_support import api_client, api_settings
from tests.integration.test_api_endpoints import ingest_status
from tests.integration.tools_support import quote, start_group_at_end

pytestmark = pytest.mark.integration


async def test_health_given_a_frozen_processor_while_quotes_arrive_turns_unhealthy_within_30s_and_recovers(
        kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path) -> None:
    app_id = f"test-fresh-{uuid.uuid4().hex[:8]}"
    symbol = unique_symbol("F")
    await start_group_at_end(kafka_bootstrap, app_id, [QUOTES_RAW.name])
    worker = processor_process(log_dir, tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url,
                                                     TICKWIRE_PROCESSOR_APP_ID=app_id,
                                                     TICKWIRE_PROCESSOR_METRICS_PORT="0"))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    sent = [0]
    last: list[dict | None] = [None]  # the latest /health body, for the failure message

    async def tick() -> None:
        """One quote, and the ingest's status as a connected ingest keeps writing it."""
        sent[0] += 1
        await producer.send_and_wait(QUOTES_RAW.name, quote(symbol, 100 + sent[0] / 100, 100.5 + sent[0] / 100,
                                                            now_ns()), key=symbol.encode())
        await redis.set(INGEST_STATUS_KEY, ingest_status([symbol]).to_json(), ex=30)

    async def health_while_ticking(client, wanted: str) -> dict | None:  # type: ignore[no-untyped-def]
        await tick()
        body = (await client.get("/health")).json()
        last[0] = body
        reporting = not body["prices"]["detail"].startswith("no price stage")
        return body if body["status"] == wanted and reporting else None

    await worker.start()
    try:
        async with api_client(api_settings(redis_url, kafka_bootstrap, TICKWIRE_PROCESSOR_APP_ID=app_id)) as client:
            healthy = await eventually(lambda: health_while_ticking(client, "healthy"), 90,
                                       "healthy with prices advancing", worker)
            os.kill(worker.pid, signal.SIGSTOP)  # type: ignore[arg-type]
            frozen_at = time.monotonic()
            try:
                stalled = await eventually(lambda: health_while_ticking(client, "unhealthy"), 40,
                                           "unhealthy after the processor froze")
                noticed_s = time.monotonic() - frozen_at
            except AssertionError as exc:
                raise AssertionError(f"{exc}; last /health: {last[0]}") from None
            finally:
                os.kill(worker.pid, signal.SIGCONT)  # type: ignore[arg-type]
            recovered = await eventually(lambda: health_while_ticking(client, "healthy"), 60,
                                         "healthy again once the processor runs", worker)
    finally:
        await producer.stop()
        await worker.stop()

    assert healthy["prices"]["ok"] and healthy["prices"]["detail"].startswith("advancing on ")
    assert noticed_s <= 30, f"noticed after {noticed_s:.0f}s"
    assert not stalled["prices"]["ok"] and stalled["prices"]["detail"].startswith("prices stopped: quotes.raw[")
    assert any(p.startswith("prices: prices stopped") for p in stalled["problems"])
    assert recovered["prices"]["ok"]
