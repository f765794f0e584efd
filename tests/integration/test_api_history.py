"""``GET /api/v1/prices/{symbol}/history``: recent mids read back from the real ``prices`` topic."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from alpaca_feed.seed_prices import SEED_PRICES
from consumers.api.price_history import session_start_ns
from schemas.events import PreviousClose
from schemas.timestamps import format_ns, now_ns
from schemas.topics import DAILY_BARS_RAW, close_key
from tests.helpers import unique_symbol
from tests.integration.api_support import api_client, api_settings, seed_close
from tests.integration.test_dashboard_e2e import _produce_history
from tests.integration.test_ingest_harness import MakeFeed

pytestmark = pytest.mark.integration


async def test_history_given_prices_on_the_topic_answers_one_point_per_second_inside_the_window(
        redis_url: str, redis: Redis, kafka_bootstrap: str) -> None:
    """Test that points come oldest first, only this symbol's, only inside ``seconds``, with the close."""
    symbol, other = unique_symbol("W"), unique_symbol("W")
    await _produce_history(kafka_bootstrap, symbol, [("90.00", 600), ("98.00", 120), ("99.00", 60), ("99.50", 30)])
    await _produce_history(kafka_bootstrap, other, [("5.00", 50)])
    await seed_close(redis, symbol, "95.00")
    async with api_client(api_settings(redis_url, kafka_bootstrap)) as client:
        body = (await client.get(f"/api/v1/prices/{symbol}/history", params={"seconds": 300})).json()
        short = (await client.get(f"/api/v1/prices/{symbol}/history", params={"seconds": 45})).json()

    assert [p["mid"] for p in body["points"]] == ["98.00", "99.00", "99.50"]  # not the one 600 s ago
    assert body["previous_close"] == "95.00" and body["detail"] == ""
    assert [p["mid"] for p in short["points"]] == ["99.50"]


async def test_history_given_no_broker_answers_the_close_and_says_why_there_are_no_points(redis_url: str,
                                                                                          redis: Redis) -> None:
    await seed_close(redis, "AAPL", "228.50")
    async with api_client(api_settings(redis_url)) as client:
        response = await client.get("/api/v1/prices/AAPL/history")

    assert response.status_code == 200
    assert response.json() == {"symbol": "AAPL", "seconds": 300, "previous_close": "228.50", "points": [],
                               "detail": "no history: KAFKA_BOOTSTRAP_SERVERS is not set"}


async def test_history_given_todays_daily_bar_in_redis_takes_the_previous_close_from_the_daily_bars_topic(
        redis_url: str, redis: Redis, kafka_bootstrap: str) -> None:
    """Test that during a session (``close:{SYMBOL}`` is today's running bar) the previous session's close
    comes from ``bars.daily.raw``, not today's."""
    symbol = unique_symbol("C")
    today = session_start_ns(now_ns())
    yesterday = session_start_ns(today - 3600 * 1_000_000_000)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for bar_ns, close in ((yesterday - 86400 * 1_000_000_000, "90.00"), (yesterday, "95.00"), (today, "99.00")):
            bar = {"T": "d", "S": symbol, "o": 1, "h": 1, "l": 1, "c": float(close), "v": 1, "n": 1, "vw": 1,
                   "t": format_ns(bar_ns)}
            await producer.send_and_wait(DAILY_BARS_RAW.name, orjson.dumps(bar), key=symbol.encode())
    finally:
        await producer.stop()
    await redis.set(close_key(symbol), PreviousClose(symbol=symbol, close=Decimal("99.00"), timestamp=format_ns(today),
                                                     source="daily_bar").to_json())
    async with api_client(api_settings(redis_url, kafka_bootstrap)) as client:
        body = (await client.get(f"/api/v1/prices/{symbol}/history")).json()

    assert body["previous_close"] == "95.00"


async def test_history_given_alpaca_rest_takes_the_previous_close_from_its_snapshot(
        redis_url: str, redis: Redis, make_feed: MakeFeed) -> None:
    """Test that with ALPACA_DATA_URL set (as `make run` sets it) the close is the snapshot's prevDailyBar:
    the local feed's AAPL closed at its seeded 230.10, although Redis holds today's bar."""
    feed = await make_feed()
    feed.model.previous_close("AAPL")  # the feed snapshots symbols it simulates (the ingest's, in `make run`)
    await redis.set(close_key("AAPL"), PreviousClose(symbol="AAPL", close=Decimal("231.97"),
                                                     timestamp=format_ns(session_start_ns(now_ns())),
                                                     source="daily_bar").to_json())
    async with api_client(api_settings(redis_url, ALPACA_DATA_URL=feed.http_url())) as client:
        body = (await client.get("/api/v1/prices/AAPL/history")).json()

    assert body["previous_close"] == SEED_PRICES["AAPL"].close == "230.10"
