"""The consistency oracle against a live pipeline: local feed -> ingest -> processor -> Redis, tables, API."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from alpaca_feed.server import AlpacaFeedServer
from consumers.consistency import (
    CheckReport,
    Oracle,
    check,
    check_redis,
    expected_prices,
    place_against_cut,
    read_topic,
)
from schemas.timestamps import format_ns, now_ns
from schemas.topics import POSITIONS, PRICE_CHANNEL_PATTERN, QUOTES_RAW, position_key, price_key
from tests.helpers import eventually, tickwire_env, tickwire_run_process, unique_symbol
from tests.integration.api_support import api_client, api_settings
from tests.integration.tools_support import produce_quotes, tickwire
from tests.integration.tools_support import quote as tools_quote

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

MIN_QUOTES = 150  # enough steady load that the oracle has real history to rebuild


async def publish_positions(bootstrap: str, account: str, positions: dict[str, tuple[str, str]]) -> None:
    """PUT positions as other services do: JSON on `positions`, key {account}:{symbol}."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for symbol, (qty, avg) in positions.items():
            value = {"account": account, "symbol": symbol, "qty": qty, "avg_entry_price": avg,
                     "updated_at": format_ns(now_ns())}
            key = position_key(account, symbol).encode()
            await producer.send_and_wait(POSITIONS.name, orjson.dumps(value), key=key)
    finally:
        await producer.stop()


async def test_check_given_live_pipeline_under_load_finds_redis_table_and_api_consistent(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    """Test that after steady load with bad quotes mixed in, Redis, the table and the API match the raw topics,
    no price.updated ever went back in time, and a tampered value is caught."""
    # Arrange
    symbols = [unique_symbol("K") for _ in range(3)]
    account = f"acct-{uuid.uuid4().hex[:6]}"
    app_id = f"check-{uuid.uuid4().hex[:8]}"
    feed = AlpacaFeedServer(rate_per_symbol=20, seed=7)
    await feed.start()
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url, ALPACA_STREAM_URL=feed.url(),
                       TICKWIRE_SYMBOLS=",".join(symbols), TICKWIRE_PROCESSOR_APP_ID=app_id,
                       TICKWIRE_RUN_DIR=str(tmp_path / "run"))
    run = tickwire_run_process(tmp_path, env)
    pubsub = redis.pubsub()
    await pubsub.psubscribe(PRICE_CHANNEL_PATTERN)
    seen: dict[str, list[str]] = {}

    async def drain() -> None:
        while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.01)) is not None:
            update = orjson.loads(message["data"])
            seen.setdefault(update["symbol"], []).append(update["timestamp"])

    async def loaded() -> bool:
        await drain()
        quotes = await read_topic(kafka_bootstrap, QUOTES_RAW.name, {s.encode() for s in symbols})
        return len(quotes) >= MIN_QUOTES and all([await redis.exists(price_key(s)) for s in symbols])

    report: CheckReport | None = None
    try:
        await run.start()
        await feed.wait_for_subscription("quotes", symbols, timeout=90)
        await publish_positions(kafka_bootstrap, account, {symbols[0]: ("100", "10.00"), symbols[1]: ("-35", "20.5")})
        for kind in ("crossed", "zero", "negative", "out_of_order"):
            feed.faults.bad_quote(symbols[2], kind)
        await eventually(loaded, 120, f"{MIN_QUOTES} quotes through the pipeline", run)

        # Act: quiesce (a halted symbol gets no quotes), then the oracle must converge on every view.
        for symbol in symbols:
            feed.faults.halt(symbol)
        async with api_client(api_settings(redis_url, kafka_bootstrap)) as client:
            async def consistent() -> CheckReport | None:
                nonlocal report
                await drain()
                report = await check(kafka_bootstrap, redis, set(symbols), 60.0, app_id, client)
                return report if report.ok else None

            try:
                await eventually(consistent, 60, "Redis, the table and the API to match the oracle", run)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {[str(m) for m in report.mismatches] if report else None}") from None
            await drain()
            # The oracle can fail: a value bent in Redis is reported, field by field.
            stored = orjson.loads(await redis.get(price_key(symbols[0])))
            stored["mid"] = "0.01"
            await redis.set(price_key(symbols[0]), orjson.dumps(stored))
            tampered = await check(kafka_bootstrap, redis, set(symbols), 60.0, None, client)
    finally:
        await pubsub.aclose()
        await run.stop(timeout=15)
        await feed.stop()

    # Assert
    assert report is not None and report.ok
    print(f"oracle: {report.summary()}")
    assert report.expected.quotes_valid >= MIN_QUOTES - 10
    assert set(report.expected.prices) == set(symbols)
    assert report.expected.positions_read == 2 and report.expected.positions_unpriced == 0
    for symbol in symbols:
        stamps = seen.get(symbol, [])
        assert stamps, f"no price.updated for {symbol}"
        assert stamps == sorted(stamps), f"{symbol}'s price moved back in time"
    # The bent mid shows in Redis, the API's price, and the API's real-time P&L (valued from that price).
    assert {(m.where, m.field) for m in tampered.mismatches} == {
        ("redis", "mid"), ("api", "mid"), ("api", "current_price"), ("api", "unrealized_pnl")}
    assert all(symbols[0] in m.subject for m in tampered.mismatches)


def live_price(value: bytes) -> bytes:
    """The ``price:{SYMBOL}`` a processor stores for this quote (the oracle's own fields, as JSON)."""
    fields = expected_prices([value], 60.0)[0]
    return orjson.dumps(next(iter(fields.values())), default=str)


async def test_check_given_live_side_behind_or_past_the_cut_says_so_and_exits_3_not_1(
    kafka_bootstrap: str, redis_url: str, redis: Redis
) -> None:
    """Test that a live price the topic produced before (or after) the cut is reported as the live side moving
    (exit 3, with where it is), while a value no cut explains stays a real mismatch (exit 1)."""
    # Arrange: three quotes at the cut; a fourth appended only after the check has read
    symbol = unique_symbol("C")
    t0 = now_ns() - 5 * 1_000_000_000
    quotes = [tools_quote(symbol, 10.0 + i, 10.02 + i, t0 + i * 1_000_000) for i in range(4)]
    await produce_quotes(kafka_bootstrap, symbol, quotes[:3])
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url)
    args = ("check", "--symbol", symbol, "--settle", "0")

    # Act: the CLI with live at the cut, behind it, and bent
    await redis.set(price_key(symbol), live_price(quotes[2]))
    at_cut = await tickwire(*args, env=env)
    await redis.set(price_key(symbol), live_price(quotes[1]))
    behind = await tickwire(*args, env=env)
    bent = orjson.loads(live_price(quotes[2]))
    bent["mid"] = "0.01"
    await redis.set(price_key(symbol), orjson.dumps(bent))
    real = await tickwire(*args, env=env)
    # ... and in-process, live past the cut: Redis shows a quote appended after the cut was read
    await redis.set(price_key(symbol), live_price(quotes[3]))
    oracle = Oracle(kafka_bootstrap, {symbol}, 60.0)
    await oracle.start()
    try:
        await oracle.advance()
        report = CheckReport(oracle.expected(), cut=oracle.cut)
        before_cut = oracle.fold.at_cut()
        await check_redis(redis, report.expected, report)
        await produce_quotes(kafka_bootstrap, symbol, quotes[3:])
        await oracle.advance()
        place_against_cut(report, oracle.fold, before_cut)
    finally:
        await oracle.stop()

    # Assert
    assert at_cut.code == 0, at_cut.out + at_cut.err
    assert "compared at the cut quotes.raw " in at_cut.out
    assert behind.code == 3, behind.out + behind.err
    assert "(live is behind the cut: it shows the quote at quotes.raw[" in behind.out
    assert "1 price(s) before the cut)" in behind.out
    assert "no real difference (exit 3)" in behind.out
    assert real.code == 1, real.out + real.err
    assert f"redis {price_key(symbol)} mid: expected 12.01, got 0.01" in real.out
    assert report.mismatches and report.real_mismatches == []
    assert all("live moved past the cut" in m.note and "1 price(s) after the cut" in m.note
               for m in report.mismatches)
