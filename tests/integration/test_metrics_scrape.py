"""The ingest's and the API's /metrics, scraped from running processes and type-checked as Prometheus reads them."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from producers.settings import IngestSettings
from schemas.topics import PROCESSOR_STATS_KEY
from tests.helpers import eventually, tickwire_env, unique_symbol
from tests.integration.test_ingest_harness import MakeFeed

pytestmark = pytest.mark.integration


def families(text: str) -> dict[str, Metric]:
    """Metric families by name, parsed by prometheus_client's own text parser (as Prometheus would)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def type_errors(parsed: dict[str, Metric]) -> list[str]:
    """What breaks Prometheus' naming rules: counters whose samples are not ``*_total``, gauges named ``*_total``."""
    errors = []
    for name, family in parsed.items():
        if family.type == "counter":
            errors += [f"counter {name}: sample {s.name}" for s in family.samples
                       if s.name not in (f"{name}_total", f"{name}_created")]
        elif name.endswith("_total") or any(s.name.endswith("_total") for s in family.samples):
            errors.append(f"{family.type} {name} is named like a counter")
    return errors


async def scrape(url: str, needs: str) -> dict[str, Metric] | None:
    """The parsed families once ``needs`` is among them; None while the process is not up or not ready."""
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(url)
    except httpx.TransportError:
        return None
    parsed = families(response.text) if response.status_code == 200 else {}
    return parsed if parsed.get(needs) is not None and parsed[needs].samples else None


def tickwire_process(name: str, args: list[str], log_dir: Path, env: dict[str, str]) -> ManagedProcess:
    """``tickwire ARGS`` as a child, logging to ``log_dir``."""
    return ManagedProcess(name, [sys.executable, "-m", "tickwire", *args],
                          log_dir / f"{name}-{uuid.uuid4().hex[:6]}.log", env)


def test_ingest_settings_given_no_port_set_serve_metrics_on_9101() -> None:
    assert IngestSettings.model_fields["ingest_metrics_port"].default == 9101


async def test_ingest_process_given_streaming_serves_counters_named_total(
    kafka_bootstrap: str, redis_url: str, make_feed: MakeFeed, log_dir: Path
) -> None:
    """Test that a running ``tickwire ingest`` exports counters as counters (``*_total``) and gauges as gauges."""
    # Arrange
    feed = await make_feed(rate_per_symbol=20)
    port = free_port("127.0.0.1")
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url, ALPACA_STREAM_URL=feed.url(),
                       TICKWIRE_SYMBOLS=unique_symbol("M"), TICKWIRE_INGEST_METRICS_PORT=str(port))
    ingest = tickwire_process("ingest", ["ingest"], log_dir, env)

    # Act
    await ingest.start()
    try:
        parsed = await eventually(lambda: scrape(f"http://127.0.0.1:{port}/metrics",
                                                 "tickwire_ingest_messages_received"),
                                  60, "the ingest to serve its message counters", ingest)
    finally:
        await ingest.stop(timeout=10)

    # Assert
    assert type_errors(parsed) == []
    for counter in ("tickwire_ingest_messages_received", "tickwire_ingest_messages_published",
                    "tickwire_ingest_gaps", "tickwire_ingest_overflow", "tickwire_ingest_reconnects"):
        assert parsed[counter].type == "counter", counter
    assert parsed["tickwire_ingest_queue_depth"].type == "gauge"
    assert parsed["tickwire_ingest_connected"].type == "gauge"


async def test_api_process_given_processor_stats_serves_them_as_a_counter(
    redis_url: str, redis: Redis, log_dir: Path
) -> None:
    """Test that a running ``tickwire api`` exports the processor's Redis counters as a ``*_total`` counter."""
    # Arrange
    await redis.hset(PROCESSOR_STATS_KEY, mapping={"accepted": 7, "rejected.crossed_market": 2})
    port = free_port("127.0.0.1")
    env = tickwire_env(REDIS_URL=redis_url, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9", TICKWIRE_API_PORT=str(port))
    api = tickwire_process("api", ["api"], log_dir, env)

    # Act
    await api.start()
    try:
        # A scrape is counted after it is answered, so the request counter has samples from the second on.
        parsed = await eventually(lambda: scrape(f"http://127.0.0.1:{port}/metrics", "tickwire_api_requests"),
                                  60, "the API to serve /metrics with counted requests", api)
    finally:
        await api.stop(timeout=10)

    # Assert
    assert type_errors(parsed) == []
    stats = parsed["tickwire_processor_stats"]
    assert stats.type == "counter"
    assert {(s.name, s.labels["name"], s.value) for s in stats.samples} >= {
        ("tickwire_processor_stats_total", "accepted", 7.0),
        ("tickwire_processor_stats_total", "rejected.crossed_market", 2.0)}
    assert "tickwire_processor_counter" not in parsed
    assert parsed["tickwire_api_requests"].type == "counter"
    assert parsed["tickwire_api_request_seconds"].type == "histogram"
    assert parsed["tickwire_redis_up"].type == "gauge"
