"""The API's writes reach the real broker: positions and subscriptions topics, health with a broker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from deploy.embedded.readiness import free_port
from schemas.topics import INGEST_STATUS_KEY, POSITIONS, SUBSCRIPTIONS, TopicSpec
from tests.helpers import read_topic_until, unique_symbol
from tests.integration.api_support import api_client, api_settings
from tests.integration.test_api_endpoints import ingest_status
from tickwire.topic_admin import ensure_topics

pytestmark = pytest.mark.integration


async def test_put_position_given_valid_body_publishes_it_to_the_positions_topic(
        redis_url: str, kafka_bootstrap: str) -> None:
    """Test that PUT /api/v1/positions/{symbol} puts a Position keyed account:symbol on `positions`."""
    # Arrange
    symbol = unique_symbol("P")

    # Act
    async with api_client(api_settings(redis_url, kafka_bootstrap)) as client:
        response = await client.put(f"/api/v1/positions/{symbol.lower()}",
                                    json={"qty": "-25.5", "avg_entry_price": "101.125", "account": "fund-2"})

    # Assert
    assert response.status_code == 202, response.text
    assert response.json()["position"]["symbol"] == symbol
    records = await read_topic_until(kafka_bootstrap, POSITIONS.name,
                                     lambda values: any(v.get("symbol") == symbol for v in values), timeout=60)
    [record] = [v for v in records if v.get("symbol") == symbol]
    assert record == {"account": "fund-2", "symbol": symbol, "qty": "-25.5", "avg_entry_price": "101.125",
                      "updated_at": response.json()["position"]["updated_at"]}


async def test_subscribe_given_symbols_publishes_requests_and_lists_them(redis_url: str, kafka_bootstrap: str,
                                                                         redis: Redis) -> None:
    """Test POST/DELETE /subscribe: api-sourced requests on `subscriptions`, and the API's own list."""
    first, second = unique_symbol("S"), unique_symbol("U")
    await redis.set(INGEST_STATUS_KEY, ingest_status([first]).to_json(), ex=30)
    async with api_client(api_settings(redis_url, kafka_bootstrap)) as client:
        created = await client.post("/api/v1/subscribe", json={"symbols": [first.lower(), second, first]})
        listed = (await client.get("/api/v1/subscriptions")).json()
        deleted = await client.delete(f"/api/v1/subscribe/{second}")
        again = await client.delete(f"/api/v1/subscribe/{second}")
        after = (await client.get("/api/v1/subscriptions")).json()

    assert created.status_code == 201
    assert created.json() == {"message": "Successfully subscribed to 2 symbols",
                              "subscribed_symbols": [first, second], "total_subscriptions": 2}
    assert listed == {"symbols": sorted([first, second]), "count": 2, "streaming": [first], "pending": [second]}
    assert deleted.json() == {"message": f"Successfully unsubscribed from {second}", "remaining_subscriptions": 1}
    assert again.status_code == 404
    assert after["symbols"] == [first]

    def done(values: list[dict[str, object]]) -> bool:
        return any(v.get("symbol") == second and v.get("action") == "unsubscribe" for v in values)

    records = await read_topic_until(kafka_bootstrap, SUBSCRIPTIONS.name, done, timeout=60)
    by_symbol = {s: [(v["action"], v["source"]) for v in records if v.get("symbol") == s] for s in (first, second)}
    # One symbol = one key = one partition, so each symbol's requests are in order.
    assert by_symbol == {first: [("subscribe", "api")], second: [("subscribe", "api"), ("unsubscribe", "api")]}


async def test_health_given_broker_redis_and_connected_ingest_is_healthy(redis_url: str, kafka_bootstrap: str,
                                                                        redis: Redis) -> None:
    group, topic = f"lag-{uuid.uuid4().hex[:8]}", f"lag-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, 1, [TopicSpec(topic, "symbol", bytes, "lag test")])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(topic, b"%d" % n, key=b"AAPL")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.commit({TopicPartition(topic, 0): 2})  # 3 records behind
    finally:
        await consumer.stop()
    await redis.set(INGEST_STATUS_KEY, ingest_status(["AAPL", "MSFT"]).to_json(), ex=30)
    async with api_client(api_settings(redis_url, kafka_bootstrap, TICKWIRE_PROCESSOR_APP_ID=group)) as client:
        response = await client.get("/health")

    body = response.json()
    assert response.status_code == 200 and body["status"] == "healthy", body
    assert (body["websocket_connected"], body["subscribed_symbols"], body["reconnect_attempts"]) == (True, 2, 2)
    assert body["broker"] == {"ok": True, "detail": ""} and body["problems"] == []
    assert body["consumer_lag"] == 3


async def test_broker_down_given_mutation_answers_503_and_health_degraded(redis_url: str) -> None:
    """Test that an unreachable broker gives a one-line 503, while the service keeps answering."""
    dead = f"127.0.0.1:{free_port()}"
    async with api_client(api_settings(redis_url, dead)) as client:
        subscribe = await client.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
        position = await client.put("/api/v1/positions/AAPL", json={"qty": "1", "avg_entry_price": "1"})
        health = await client.get("/health")
        listed = await client.get("/api/v1/subscriptions")

    for response in (subscribe, position):
        assert response.status_code == 503
        assert response.json()["detail"].startswith("broker unavailable:")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["broker"]["ok"] is False and health.json()["consumer_lag"] == "unknown (broker unreachable)"
    assert listed.json()["symbols"] == []  # nothing claimed that the ingest was never asked for
