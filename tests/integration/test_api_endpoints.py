"""The market-data API on a real Redis (no broker): reads, P&L to the cent, errors, token, metrics, 503s."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from deploy.embedded.readiness import free_port
from schemas.events import IngestStatus
from schemas.topics import INGEST_STATUS_KEY, PROCESSOR_STATS_KEY, price_key
from tests.helpers import eventually, unique_symbol
from tests.integration.api_support import (
    api_client,
    api_settings,
    seed_close,
    seed_position,
    seed_price,
    seed_trade,
    ts,
)

pytestmark = pytest.mark.integration


def ingest_status(symbols: list[str], connected: bool = True) -> IngestStatus:
    return IngestStatus(role="active", connected=connected, healthy=connected, stream_url="ws://feed/v2/iex",
                        subscribed_symbols=symbols, reconnect_attempts=2, queue_depth=3, overflow=0,
                        messages_received={"q": 10}, messages_published={"q": 10}, last_message_at={}, gaps=0,
                        detail="", updated_at=ts())


def dead_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


async def realtime(redis_url: str, account: str | None = None, **overrides: object) -> dict[str, object]:
    async with api_client(api_settings(redis_url, **overrides)) as client:
        response = await client.get("/api/v1/positions/pnl/realtime", params={"account": account} if account else {})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_realtime_pnl_given_long_and_short_at_known_prices_is_exact_to_the_cent(
        redis_url: str, redis: Redis) -> None:
    """Test that a long and a short valued at the mid give the seed's figures, summed exactly."""
    # Arrange
    long_symbol, short_symbol = unique_symbol("L"), unique_symbol("S")
    long_price = await seed_price(redis, long_symbol, "151.99", "152.01")
    short_price = await seed_price(redis, short_symbol, "149.25", "149.26")  # mid 149.255
    await seed_position(redis, long_symbol, "100", "150.00")
    await seed_position(redis, short_symbol, "-50", "150.00")

    # Act
    body = await realtime(redis_url)

    # Assert
    by_symbol = {p["symbol"]: p for p in body["positions"]}  # type: ignore[union-attr]
    assert by_symbol[long_symbol] == {
        "symbol": long_symbol, "qty": "100", "avg_entry_price": "150.00", "current_price": "152.00",
        "unrealized_pnl": "200.00", "price_source": "real-time", "last_updated": long_price.timestamp}
    assert by_symbol[short_symbol] == {
        "symbol": short_symbol, "qty": "-50", "avg_entry_price": "150.00", "current_price": "149.255",
        "unrealized_pnl": "37.25", "price_source": "real-time", "last_updated": short_price.timestamp}
    assert [p["symbol"] for p in body["positions"]] == sorted(by_symbol)  # type: ignore[union-attr]
    assert body["total_unrealized"] == "237.25"
    assert body["mark_policy"] == "mid" and body["account"] == "default"


async def test_realtime_pnl_given_price_before_or_after_position_values_it_either_way(
        redis_url: str, redis: Redis) -> None:
    """Test that the order in which price and position reach Redis does not matter."""
    first, second = unique_symbol("A"), unique_symbol("B")
    await seed_price(redis, first, "10.00", "10.02")  # price before position
    await seed_position(redis, first, "3", "9.00")
    await seed_position(redis, second, "7", "20.00")  # position before price
    before = await realtime(redis_url)
    await seed_price(redis, second, "21.10", "21.12")

    after = await realtime(redis_url)

    by_symbol = {p["symbol"]: p for p in after["positions"]}  # type: ignore[union-attr]
    assert by_symbol[first]["unrealized_pnl"] == "3.03"
    assert by_symbol[second]["unrealized_pnl"] == "7.77"
    assert [p["price_source"] for p in before["positions"] if p["symbol"] == second] == ["none"]  # type: ignore
    assert after["total_unrealized"] == "10.80"


async def test_realtime_pnl_given_price_expired_falls_back_to_previous_close(redis_url: str, redis: Redis) -> None:
    """Test that once the price key expires the position is marked at the close, flagged 'closing'."""
    symbol = unique_symbol("C")
    await seed_position(redis, symbol, "10", "100.00")
    close = await seed_close(redis, symbol, "98.76")
    await seed_price(redis, symbol, "101.00", "101.02")
    assert (await realtime(redis_url))["total_unrealized"] == "10.10"
    await redis.pexpire(price_key(symbol), 1)
    await eventually(lambda: _gone(redis, price_key(symbol)), 10, "the price key to expire")

    body = await realtime(redis_url)

    assert body["positions"] == [{"symbol": symbol, "qty": "10", "avg_entry_price": "100.00",
                                  "current_price": "98.76", "unrealized_pnl": "-12.40", "price_source": "closing",
                                  "last_updated": close.timestamp}]
    assert body["total_unrealized"] == "-12.40"


async def _gone(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)


async def test_realtime_pnl_given_no_price_nor_close_reports_none_and_counts_zero(redis_url: str,
                                                                                 redis: Redis) -> None:
    symbol = unique_symbol("N")
    await seed_position(redis, symbol, "5", "1.00", account="acct-n")

    body = await realtime(redis_url, account="acct-n")

    assert body["positions"] == [{"symbol": symbol, "qty": "5", "avg_entry_price": "1.00", "current_price": None,
                                  "unrealized_pnl": None, "price_source": "none", "last_updated": None}]
    assert body["total_unrealized"] == "0.00"


@pytest.mark.parametrize(("policy", "long_pnl", "short_pnl"), [("side", "190.00", "-21.00"),
                                                               ("last", "250.00", "-25.00")])
async def test_realtime_pnl_given_mark_policy_setting_uses_that_price(
        redis_url: str, redis: Redis, policy: str, long_pnl: str, short_pnl: str) -> None:
    """Test TICKWIRE_MARK_POLICY: side = bid for longs / ask for shorts; last = the last trade."""
    long_symbol, short_symbol = unique_symbol("P"), unique_symbol("Q")
    for symbol in (long_symbol, short_symbol):
        await seed_price(redis, symbol, "101.90", "102.10")
        await seed_trade(redis, symbol, "102.50")
    await seed_position(redis, long_symbol, "100", "100.00")
    await seed_position(redis, short_symbol, "-10", "100.00")

    body = await realtime(redis_url, TICKWIRE_MARK_POLICY=policy)

    by_symbol = {p["symbol"]: p["unrealized_pnl"] for p in body["positions"]}  # type: ignore[union-attr]
    assert (by_symbol[long_symbol], by_symbol[short_symbol]) == (long_pnl, short_pnl)
    assert body["mark_policy"] == policy


async def test_realtime_pnl_given_empty_account_returns_no_positions(redis_url: str) -> None:
    assert await realtime(redis_url, account="nobody") == {"account": "nobody", "mark_policy": "mid",
                                                           "positions": [], "total_unrealized": "0.00"}


async def test_positions_given_account_lists_its_open_positions(redis_url: str, redis: Redis) -> None:
    symbol = unique_symbol("V")
    position = await seed_position(redis, symbol, "12.5", "33.10", account="fund-7")
    async with api_client(api_settings(redis_url)) as client:
        mine = await client.get("/api/v1/positions", params={"account": "fund-7"})
        default = await client.get("/api/v1/positions")
        bad = await client.get("/api/v1/positions", params={"account": "no spaces"})

    assert mine.json() == {"account": "fund-7", "count": 1, "positions": [
        {"account": "fund-7", "symbol": symbol, "qty": "12.5", "avg_entry_price": "33.10",
         "updated_at": position.updated_at}]}
    assert default.json()["count"] == 0
    assert bad.status_code == 422 and "invalid account" in bad.json()["detail"]


async def test_prices_given_known_unknown_and_malformed_symbols_answers_200_404_422(redis_url: str,
                                                                                  redis: Redis) -> None:
    symbol = unique_symbol("R")
    snap = await seed_price(redis, symbol, "10.00", "10.04")
    async with api_client(api_settings(redis_url)) as client:
        known = await client.get(f"/api/v1/prices/{symbol.lower()}")
        unknown = await client.get("/api/v1/prices/ZZZZZZ")
        malformed = await client.get("/api/v1/prices/not$a$symbol")

    assert known.status_code == 200 and known.json()["mid"] == "10.02" and known.json() == snap.model_dump(mode="json")
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("no live price for ZZZZZZ")
    assert malformed.status_code == 422 and "invalid symbol" in malformed.json()["detail"]


async def test_stats_given_processor_counters_and_ingest_status_reports_both(redis_url: str, redis: Redis) -> None:
    await redis.hset(PROCESSOR_STATS_KEY, mapping={"accepted": 42, "rejected.stale": 3})
    status = ingest_status(["AAPL", "MSFT"])
    await redis.set(INGEST_STATUS_KEY, status.to_json(), ex=30)
    async with api_client(api_settings(redis_url)) as client:
        with_ingest = (await client.get("/api/v1/stats")).json()
        await redis.delete(INGEST_STATUS_KEY)
        without = (await client.get("/api/v1/stats")).json()

    assert with_ingest["processor"] == {"accepted": 42, "rejected.stale": 3}
    assert with_ingest["ingest"]["subscribed_symbols"] == ["AAPL", "MSFT"] and with_ingest["ingest_running"]
    assert without["ingest"] is None and without["ingest_running"] is False


async def test_health_given_no_broker_and_no_ingest_is_degraded_with_reasons(redis_url: str) -> None:
    async with api_client(api_settings(redis_url)) as client:
        response = await client.get("/health")

    body = response.json()
    assert response.status_code == 200 and body["status"] == "degraded"
    assert body["websocket_connected"] is False and body["reconnect_attempts"] is None
    assert body["problems"] == ["broker KAFKA_BOOTSTRAP_SERVERS is not set", "ingest: not running (no status in redis)"]


async def test_health_given_disconnected_ingest_reports_it(redis_url: str, redis: Redis) -> None:
    await redis.set(INGEST_STATUS_KEY, ingest_status(["AAPL"], connected=False).to_json(), ex=30)
    async with api_client(api_settings(redis_url)) as client:
        body = (await client.get("/health")).json()

    assert body["status"] == "degraded" and body["websocket_connected"] is False
    assert body["subscribed_symbols"] == 1 and body["reconnect_attempts"] == 2
    assert "ingest: websocket disconnected" in body["problems"]


async def test_redis_down_given_any_read_answers_503_with_reason_and_keeps_serving() -> None:
    """Test that with Redis unreachable reads answer 503 in one line, health 503, and metrics still work."""
    async with api_client(api_settings(dead_redis_url())) as client:
        price = await client.get("/api/v1/prices/AAPL")
        pnl = await client.get("/api/v1/positions/pnl/realtime")
        health = await client.get("/health")
        metrics = await client.get("/metrics")
        stream = await client.get("/api/v1/stream")

    for response in (price, pnl, stream):
        assert response.status_code == 503, response.text
        assert response.json()["detail"].startswith("redis unavailable:") and "\n" not in response.json()["detail"]
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"
    assert metrics.status_code == 200 and "tickwire_redis_up 0.0" in metrics.text


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "detail"), [
    ("post", "/api/v1/subscribe", {"json": {}}, 422, "symbols: field required"),
    ("post", "/api/v1/subscribe", {"json": {"symbols": ["AAPL", "12X"]}}, 422, "invalid symbol '12X'"),
    ("post", "/api/v1/subscribe", {"json": {"symbols": ["A"] * 101}}, 422, "at most 100 items"),
    ("post", "/api/v1/subscribe", {"content": b"{nope", "headers": {"content-type": "application/json"}}, 422,
     "request body is not valid JSON"),
    ("post", "/api/v1/subscribe", {"content": b"[" + b"1," * 40000 + b"1]",
                                   "headers": {"content-type": "application/json"}}, 413, "request body too large"),
    ("put", "/api/v1/positions/AAPL", {"json": {"qty": "ten", "avg_entry_price": "1"}}, 422,
     "qty is not a decimal number: 'ten'"),
    ("put", "/api/v1/positions/AAPL", {"json": {"qty": "10"}}, 422, "avg_entry_price: field required"),
    ("put", "/api/v1/positions/$X", {"json": {"qty": "10", "avg_entry_price": "1"}}, 422, "invalid symbol"),
    ("delete", "/api/v1/subscribe/AAPL", {}, 404, "AAPL is not subscribed through the API"),
    ("get", "/api/v1/stream?symbols=AAPL,%24%24", {}, 422, "symbols: invalid symbol"),
    ("get", "/api/v1/nothing-here", {}, 404, "Not Found"),
])
async def test_bad_request_given_each_kind_answers_4xx_saying_what_is_wrong(
        redis_url: str, method: str, path: str, kwargs: dict[str, object], status: int, detail: str) -> None:
    async with api_client(api_settings(redis_url)) as client:
        response = await getattr(client, method)(path, **kwargs)

    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


async def test_broker_not_configured_given_mutation_answers_503(redis_url: str) -> None:
    async with api_client(api_settings(redis_url)) as client:
        response = await client.put("/api/v1/positions/AAPL", json={"qty": "1", "avg_entry_price": "1"})

    assert response.status_code == 503
    assert response.json() == {"detail": "broker not configured: KAFKA_BOOTSTRAP_SERVERS is not set"}


@pytest.mark.parametrize(("headers", "status", "detail"), [
    ({}, 401, "missing bearer token"),
    ({"Authorization": "Bearer wrong"}, 401, "invalid bearer token"),
    ({"Authorization": "Basic czNjcmV0"}, 401, "missing bearer token"),
    ({"Authorization": "Bearer s3cret-token"}, 404, "not subscribed through the API"),  # past the check
])
async def test_token_given_configured_guards_mutations_only(redis_url: str, headers: dict[str, str], status: int,
                                                            detail: str) -> None:
    """Test that with TICKWIRE_API_TOKEN set, mutations need the bearer token and reads do not."""
    settings = api_settings(redis_url, TICKWIRE_API_TOKEN="s3cret-token")
    async with api_client(settings) as client:
        delete = await client.delete("/api/v1/subscribe/AAPL", headers=headers)
        put = await client.put("/api/v1/positions/AAPL", json={"qty": "1", "avg_entry_price": "1"}, headers=headers)
        post = await client.post("/api/v1/subscribe", json={"symbols": ["AAPL"]}, headers=headers)
        read = await client.get("/api/v1/positions")

    assert delete.status_code == status and detail in delete.json()["detail"]
    if status == 401:
        assert put.status_code == post.status_code == 401
        assert delete.headers["www-authenticate"] == "Bearer"
    else:
        assert put.status_code == post.status_code == 503  # authorised; no broker configured here
    assert read.status_code == 200


async def test_metrics_given_requests_and_stats_exports_counts_latency_and_gauges(redis_url: str,
                                                                                  redis: Redis) -> None:
    await redis.hset(PROCESSOR_STATS_KEY, mapping={"accepted": 7})
    await redis.set(INGEST_STATUS_KEY, ingest_status(["AAPL", "MSFT", "GOOGL"]).to_json(), ex=30)
    async with api_client(api_settings(redis_url)) as client:
        await client.get("/api/v1/prices/AAPL")
        await client.get("/api/v1/prices/MSFT")
        text = (await client.get("/metrics")).text

    assert 'tickwire_api_requests_total{method="GET",route="/api/v1/prices/{symbol}",status="404"} 2.0' in text
    assert 'tickwire_api_request_seconds_count{method="GET",route="/api/v1/prices/{symbol}"} 2.0' in text
    assert 'tickwire_processor_stats_total{name="accepted"} 7.0' in text
    assert "# TYPE tickwire_processor_stats_total counter" in text
    assert "tickwire_ingest_subscribed_symbols 3.0" in text and "tickwire_ingest_connected 1.0" in text


async def test_docs_and_dashboard_given_browser_paths_are_served(redis_url: str) -> None:
    async with api_client(api_settings(redis_url)) as client:
        docs = await client.get("/docs")
        schema = (await client.get("/openapi.json")).json()
        page = await client.get("/")

    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert {"/health", "/api/v1/subscribe", "/api/v1/subscribe/{symbol}", "/api/v1/subscriptions",
            "/api/v1/positions", "/api/v1/positions/{symbol}", "/api/v1/positions/pnl/realtime",
            "/api/v1/prices/{symbol}", "/api/v1/stats", "/api/v1/stream", "/metrics", "/schemas",
            "/schemas/{name}"} <= set(schema["paths"])
    assert page.status_code == 200 and 'new EventSource(url)' in page.text and '"api/v1/stream?account="' in page.text



async def test_realtime_pnl_given_repeated_calls_follows_each_change_of_price_position_and_close(
        redis_url: str, redis: Redis) -> None:
    """Test that one running app never serves a stale valuation when any input changes."""
    symbol = unique_symbol("M")
    await seed_position(redis, symbol, "10", "100.00")
    await seed_price(redis, symbol, "101.00", "101.02")
    async with api_client(api_settings(redis_url)) as client:
        async def pnl() -> str:
            return (await client.get("/api/v1/positions/pnl/realtime")).json()["total_unrealized"]  # type: ignore

        first, again = await pnl(), await pnl()
        await seed_price(redis, symbol, "102.00", "102.02")
        new_price = await pnl()
        await seed_position(redis, symbol, "20", "100.00")
        new_qty = await pnl()
        await redis.delete(price_key(symbol))
        await seed_close(redis, symbol, "99.00")
        at_close = await pnl()

    assert (first, again, new_price, new_qty, at_close) == ("10.10", "10.10", "20.10", "40.20", "-20.00")
