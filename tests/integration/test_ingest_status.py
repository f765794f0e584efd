"""What the ingest says about itself: IngestStatus in Redis (for the API's /health) and Prometheus metrics."""

from __future__ import annotations

import aiohttp
import pytest
from redis.asyncio import Redis

from deploy.embedded.readiness import free_port
from schemas.events import IngestStatus
from schemas.topics import INGEST_STATUS_KEY, QUOTES_RAW
from tests.helpers import eventually, unique_symbol
from tests.integration.test_ingest_harness import MakeFeed, records_of, running_ingest

pytestmark = pytest.mark.integration


async def test_ingest_given_streaming_writes_status_to_redis_and_serves_prometheus_metrics(
    kafka_bootstrap: str, redis_url: str, redis: Redis, make_feed: MakeFeed
) -> None:
    """Test the per-second IngestStatus (short TTL, rates, per-symbol times) and the metrics endpoint."""
    # Arrange
    symbol = unique_symbol("P")
    feed = await make_feed(rate_per_symbol=20)
    port = free_port("127.0.0.1")

    async def flowing() -> IngestStatus | None:
        raw = await redis.get(INGEST_STATUS_KEY)
        status = IngestStatus.model_validate_json(raw) if raw else None
        return status if status and status.messages_per_second.get("q", 0) > 0 else None

    # Act
    async with running_ingest(kafka_bootstrap, redis_url, feed, [symbol], ingest_metrics_port=port):
        await records_of(kafka_bootstrap, QUOTES_RAW.name, symbol, 1)
        status = await eventually(flowing, 30, "a status with a message rate")
        ttl = await redis.ttl(INGEST_STATUS_KEY)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
            metrics = await response.text()

    # Assert
    assert 0 < ttl <= 5
    assert (status.role, status.connected, status.healthy, status.subscribed_symbols) == ("active", True, True,
                                                                                         [symbol])
    assert status.queue_depth >= 0 and status.overflow == 0 and status.reconnect_attempts == 0
    assert set(status.last_message_at) == {symbol} and set(status.last_exchange_at) == {symbol}
    assert status.last_exchange_at[symbol] <= status.last_message_at[symbol] <= status.updated_at
    assert "tickwire_ingest_connected 1.0" in metrics
    assert 'tickwire_ingest_messages_received_total{type="q"}' in metrics
    assert "tickwire_ingest_queue_depth" in metrics and "tickwire_ingest_overflow_total 0.0" in metrics
