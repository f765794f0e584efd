"""Security of the API on a real password-protected redis-server: the password is honoured and never shown,
and writes need the bearer token (compared in constant time) before anything else happens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, ResponseError

from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from deploy.embedded.redis_server import redis_server_binary
from tests.helpers import eventually
from tests.integration.api_support import api_client, api_settings

pytestmark = pytest.mark.integration

PASSWORD = "pw-s3cret-7f2a"
TOKEN = "tok-5e7c1d9a0b"


@pytest.fixture
async def locked_redis(log_dir: Path) -> AsyncIterator[tuple[str, int]]:
    """A redis-server that requires PASSWORD: yields (host, port)."""
    port = free_port()
    server = ManagedProcess("redis-locked", [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                                             "--save", "", "--appendonly", "no", "--requirepass", PASSWORD],
                            log_dir / f"redis-locked-{port}.log")
    await server.start()

    async def answers() -> bool:
        client = Redis.from_url(f"redis://:{PASSWORD}@127.0.0.1:{port}/0", socket_connect_timeout=1)
        try:
            return bool(await client.ping())
        except Exception:
            return False
        finally:
            await client.aclose()

    try:
        await eventually(answers, 15, "the password-protected redis-server", server)
        yield "127.0.0.1", port
    finally:
        await server.stop()


async def test_api_given_redis_password_uses_it_and_given_a_wrong_one_says_503_without_showing_it(
    locked_redis: tuple[str, int]
) -> None:
    host, port = locked_redis
    without = Redis.from_url(f"redis://{host}:{port}/0")
    with pytest.raises((AuthenticationError, ResponseError)):  # the server really is locked
        await without.get("price:AAPL")
    await without.aclose()

    async with api_client(api_settings(f"redis://:{PASSWORD}@{host}:{port}/0")) as client:
        good = await client.get("/api/v1/prices/AAPL")
        good_health = await client.get("/health")
    async with api_client(api_settings(f"redis://:wrong-{PASSWORD}@{host}:{port}/0")) as client:
        bad = await client.get("/api/v1/prices/AAPL")
        bad_health = await client.get("/health")
        bad_pnl = await client.get("/api/v1/positions/pnl/realtime")

    assert good.status_code == 404, good.text  # reached Redis, authenticated: no price yet
    assert good_health.json()["redis"]["ok"] is True, good_health.text
    assert bad_health.json()["redis"]["ok"] is False, bad_health.text
    assert (bad.status_code, bad_pnl.status_code, bad_health.status_code) == (503, 503, 503), bad_health.text
    for response in (good, good_health, bad, bad_health, bad_pnl):
        assert PASSWORD not in response.text and PASSWORD not in str(response.headers)


@pytest.mark.parametrize("authorization", [None, "", "Bearer", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x",
                                           f"Basic {TOKEN}", f"Bearer {TOKEN.upper()}"])
async def test_writes_given_missing_or_near_miss_token_answer_401_before_touching_anything(
    redis_url: str, authorization: str | None
) -> None:
    """No broker is configured: a write that got past the token check would say 503, not 401."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with api_client(api_settings(redis_url, TICKWIRE_API_TOKEN=TOKEN)) as client:
        answers = [
            await client.post("/api/v1/subscribe", json={"symbols": ["AAPL"]}, headers=headers),
            await client.put("/api/v1/positions/AAPL", json={"qty": "1", "avg_entry_price": "1"}, headers=headers),
            await client.delete("/api/v1/subscribe/AAPL", headers=headers),
        ]
        read = await client.get("/api/v1/prices/AAPL", headers=headers)
    assert [a.status_code for a in answers] == [401, 401, 401], [a.text for a in answers]
    assert all(TOKEN not in a.text for a in answers)
    assert read.status_code == 404  # reads never need the token


async def test_writes_given_the_token_pass_the_check(redis_url: str) -> None:
    async with api_client(api_settings(redis_url, TICKWIRE_API_TOKEN=TOKEN)) as client:
        answer = await client.put("/api/v1/positions/AAPL", json={"qty": "1", "avg_entry_price": "1"},
                                  headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 503 and "broker" in answer.text.lower()  # past the token: no broker configured


async def test_input_limits_given_oversized_or_malformed_requests_answer_clear_4xx(redis_url: str) -> None:
    async with api_client(api_settings(redis_url)) as client:
        too_many = await client.post("/api/v1/subscribe", json={"symbols": [f"S{i}" for i in range(101)]})
        huge = await client.post("/api/v1/subscribe", content=b'{"symbols": ["' + b"A" * 70_000 + b'"]}',
                                 headers={"Content-Type": "application/json"})
        bad_symbol = await client.get("/api/v1/prices/not a symbol!")
        long_symbol = await client.get("/api/v1/prices/" + "A" * 50)
        bad_qty = await client.put("/api/v1/positions/AAPL", json={"qty": "NaN", "avg_entry_price": "1"})
    assert (too_many.status_code, huge.status_code, bad_symbol.status_code, long_symbol.status_code,
            bad_qty.status_code) == (422, 413, 422, 422, 422)
    for response in (too_many, huge, bad_symbol, long_symbol, bad_qty):
        assert response.json()["detail"], response.text
