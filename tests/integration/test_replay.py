"""tickwire replay and diff against a real broker, Redis and a real price processor worker."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from consumers.tools.bounds import parse_offsets, parse_time
from consumers.tools.diff import diff
from consumers.tools.replay import ReplayError, ReplayRequest, replay
from consumers.tools.settings import ToolSettings
from schemas.timestamps import NS_PER_SECOND, now_ns
from schemas.topics import (
    ALL_TOPICS,
    PRICE_CHANNEL_PATTERN,
    PRICES,
    QUOTES_RAW,
    QUOTES_REJECTED,
    namespaced,
    price_key,
    replay_namespace,
    replay_topic,
    symbol_stats_key,
)
from tests.helpers import eventually, processor_process, read_topic_until, tickwire_env, unique_symbol
from tests.integration.tools_support import (
    commit_offsets,
    end_offsets,
    mixed_quotes,
    offsets_arg,
    quote,
    redis_snapshot,
    start_group_at_end,
    tickwire,
    topics_high_water,
)

pytestmark = pytest.mark.integration


async def produce(bootstrap: str, records: list[tuple[str, bytes]], timestamps_ms: list[int] | None = None) -> None:
    """Send records in order (key = symbol), optionally with chosen record timestamps."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(QUOTES_RAW.name, value, key=symbol.encode(),
                                    timestamp_ms=timestamps_ms[i] if timestamps_ms else None)
                for i, (symbol, value) in enumerate(records)]
        for future in sent:
            await future
    finally:
        await producer.stop()


async def test_replay_given_range_a_worker_processed_reproduces_its_redis_state_without_touching_live(
    kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path
) -> None:
    """Test that a replay of what a live worker consumed ends with byte-identical prices and equal counts,
    while no live key, channel or topic changes."""
    # Arrange: a recorded range with every kind of quote, processed by a real worker
    symbols = [unique_symbol("R") for _ in range(3)]
    stream = mixed_quotes(symbols, per_symbol=60, t0_ns=now_ns() - 30 * NS_PER_SECOND)
    before = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    await produce(kafka_bootstrap, stream.records)
    after = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    group = f"test-replay-live-{uuid.uuid4().hex[:8]}"
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url, TICKWIRE_PROCESSOR_APP_ID=group)
    # The worker consumes exactly the recorded range (not the session's backlog), as the replay will.
    await start_group_at_end(kafka_bootstrap, group, [t.name for t in ALL_TOPICS if t.name != QUOTES_RAW.name])
    await commit_offsets(kafka_bootstrap, group, QUOTES_RAW.name, before)
    worker = processor_process(log_dir, env)
    await worker.start()

    async def all_counted() -> bool:
        for symbol in symbols:
            counts = await redis.hgetall(symbol_stats_key(symbol))
            if sum(int(v) for v in counts.values()) < stream.per_symbol(symbol):
                return False
        return True

    try:
        await eventually(all_counted, 90, "the live worker to process every recorded quote", worker)
    finally:
        await worker.stop()
    live_before = await redis_snapshot(redis)
    topics_before = await topics_high_water(kafka_bootstrap)
    run = f"t{uuid.uuid4().hex[:8]}"
    pubsub = redis.pubsub()
    await pubsub.psubscribe(PRICE_CHANNEL_PATTERN, namespaced(PRICE_CHANNEL_PATTERN, replay_namespace(run)))

    # Act
    replayed = await tickwire("replay", QUOTES_RAW.name, "--from-offset", offsets_arg(before), "--to-offset",
                              offsets_arg(after), "--symbol", ",".join(symbols), "--run-id", run, "--no-progress",
                              env=env)
    compared = await tickwire("diff", "live", run, env=env)

    # Assert: the same state, under the run's names only
    assert replayed.code == 0, replayed.err
    assert f"replayed {len(stream.records)} of " in replayed.out
    for symbol in symbols:
        live_price = await redis.get(price_key(symbol))
        assert live_price is not None
        assert await redis.get(namespaced(price_key(symbol), replay_namespace(run))) == live_price
        assert await redis.hgetall(namespaced(symbol_stats_key(symbol), replay_namespace(run))) == \
            await redis.hgetall(symbol_stats_key(symbol))
    assert compared.code == 0, compared.out + compared.err
    assert f"no differences in 3 symbols ({', '.join(sorted(symbols))})" in compared.out

    live_after = await redis_snapshot(redis)
    assert {k: v for k, v in live_after.items() if not k.startswith(replay_namespace(run).encode())} == live_before
    topics_after = await topics_high_water(kafka_bootstrap)
    assert {tp: o for tp, o in topics_after.items() if tp in topics_before} == topics_before
    run_topics = {tp.topic for tp in set(topics_after) - set(topics_before)}
    assert run_topics == {replay_topic(PRICES.name, run), replay_topic(QUOTES_REJECTED.name, run)}

    channels = set()
    # Everything was published before the replay exited, so it is all buffered: read until the buffer is empty.
    while (message := await pubsub.get_message(timeout=0.2)) is not None:
        if message["type"] == "pmessage":
            channels.add(message["channel"].decode())
    await pubsub.aclose()
    assert channels and all(c.startswith(replay_namespace(run)) for c in channels), channels

    accepted = sum([int(await redis.hget(symbol_stats_key(s), "accepted") or 0) for s in symbols])
    run_prices = await read_topic_until(kafka_bootstrap, replay_topic(PRICES.name, run),
                                        lambda vs: len(vs) >= accepted, timeout=30)
    assert len(run_prices) == accepted and {p["symbol"] for p in run_prices} == set(symbols)


async def test_diff_given_runs_over_time_and_offset_ranges_finds_exactly_the_injected_differences(
    kafka_bootstrap: str, redis_url: str, redis: Redis
) -> None:
    """Test that two replays of one range agree, and diff names each symbol and field that was changed."""
    # Arrange: record timestamps 10 ms apart, after every record already on the broker (time ranges assume
    # roughly increasing record times per partition, as producers stamping "now" give)
    first, second = unique_symbol("D"), unique_symbol("D")
    t0_ms = now_ns() // 1_000_000 + 1
    records = [(symbol, quote(symbol, 50.0 + i / 100, 50.02 + i / 100, t0_ms * 1_000_000 + i * NS_PER_SECOND))
               for i in range(10) for symbol in (first, second)]
    stamps = [t0_ms + i * 10 for i in range(10) for _ in range(2)]
    before = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    await produce(kafka_bootstrap, records, stamps)
    after = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url)
    by_time, by_offset, shorter = (f"t{uuid.uuid4().hex[:8]}" for _ in range(3))
    symbols = f"{first},{second}"
    t_from, t_to = _rfc3339_ms(t0_ms), _rfc3339_ms(t0_ms + 100)

    settings = ToolSettings(kafka_bootstrap_servers=kafka_bootstrap, redis_url=redis_url)

    def request(run_id: str, **bounds: object) -> ReplayRequest:
        return ReplayRequest(topic=QUOTES_RAW.name, run_id=run_id, symbols=frozenset({first, second}),
                             **{"start": None, "end": None, **bounds})  # type: ignore[arg-type]

    # Act: the command line once, the same functions in-process for the rest
    timed = await tickwire("replay", "--from-time", t_from, "--to-time", t_to, "-s", symbols, "--run-id", by_time,
                           "--no-progress", env=env)
    offsets = await replay(settings, request(by_offset, start=parse_offsets(offsets_arg(before)),
                                             end=parse_offsets(offsets_arg(after))))
    same = await diff(redis, by_time, by_offset)
    key = namespaced(price_key(first), replay_namespace(by_offset))
    injected = orjson.loads(await redis.get(key))
    original_mid, injected["mid"] = injected["mid"], "99.99"
    await redis.set(key, orjson.dumps(injected))
    changed = await tickwire("diff", by_time, by_offset, "-o", "json", env=env)
    cut = await replay(settings, request(shorter, start=parse_time(t_from), end=parse_time(_rfc3339_ms(t0_ms + 80))))
    cut_diff = await diff(redis, by_time, shorter, [second])
    paced = await replay(settings, request(f"t{uuid.uuid4().hex[:8]}", start=parse_time(t_from), end=parse_time(t_to),
                                           speed=0.1))  # 90 ms of recorded time, 10 times slower
    paced_diff = await diff(redis, by_time, paced.run_id)
    with pytest.raises(ReplayError, match="already has state"):
        await replay(settings, request(by_time, start=parse_time(t_from)))

    # Assert
    assert timed.code == 0, timed.err
    assert "replayed 20 of" in timed.out and offsets.records_replayed == 20 and cut.records_replayed == 16
    assert "(start: scan" in timed.out or "(start: broker time index" in timed.out
    if "(start: scan" in timed.out:  # the embedded broker's time index is approximate: the replay says so
        assert "by scanning" in timed.out
    assert same.differences == [] and same.symbols == sorted([first, second])
    assert changed.code == 1, changed.err
    assert orjson.loads(changed.out)["differences"] == [
        {"symbol": first, "field": "price.mid", "left": original_mid, "right": "99.99"}
    ]
    assert paced.records_replayed == 20 and paced.replay_seconds >= 0.9 and paced_diff.differences == []
    cut_fields = {d.field: (d.left, d.right) for d in cut_diff.differences}
    assert cut_diff.differing_symbols == [second]
    assert cut_fields["count.accepted"] == ("10", "8")
    assert cut_fields["price.timestamp"][0] > cut_fields["price.timestamp"][1]


def _rfc3339_ms(ms: int) -> str:
    from schemas.timestamps import format_ns

    return format_ns(ms * 1_000_000)
