"""The toy stage runs from its registry entry alone: a processor named with it counts quotes per symbol."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from processors.toy_stage import TOY_COUNTS_KEY
from schemas.timestamps import now_ns
from schemas.topics import QUOTES_RAW
from tests.helpers import eventually, processor_process, tickwire_env, unique_symbol
from tests.integration.tools_support import quote

pytestmark = pytest.mark.integration


async def test_toy_stage_given_quotes_counts_them_per_symbol(
    kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path
) -> None:
    symbol = unique_symbol("TOY")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(7):
            await producer.send_and_wait(QUOTES_RAW.name, quote(symbol, 10.0 + i, 10.02 + i, now_ns()),
                                         key=symbol.encode())
    finally:
        await producer.stop()
    worker = processor_process(log_dir, tickwire_env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url, TICKWIRE_PROCESSOR_STAGES="toy",
        TICKWIRE_PROCESSOR_APP_ID=f"test-toy-{uuid.uuid4().hex[:8]}"))
    await worker.start()
    try:
        async def counted() -> bool:
            return await redis.hget(TOY_COUNTS_KEY, symbol) == b"7"

        await eventually(counted, 90, "the toy stage to count the symbol's 7 quotes", worker)
    finally:
        await worker.stop()
